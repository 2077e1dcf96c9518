#!/usr/bin/env bash
# test-install.sh - installing dmsnap like a system tool (issue 17), on the host: the manual
# pages are current and cover every option, the Debian package builds, lintian reports no
# error, its contents and Depends are right, the binary and pages work from an unpacked tree,
# the systemd unit verifies, install.sh installs and uninstalls only its own files, and the
# bash completion lists subcommands and recorded sets.
#   Tests/install/test-install.sh BIN     (BIN: a release build of dmsnap)
# Ends with "install: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/../.."
export PATH="/opt/swift/usr/bin:/usr/sbin:/sbin:$PATH"
bin=${1:?usage: test-install.sh BIN}
pass=0 fail=0
work=$(mktemp -d /var/tmp/dmsnap-install.XXXXXX)
trap 'rm -rf "$work"' EXIT
check() { # NAME CMD...: one test; its output is shown when it fails
    local name=$1
    shift
    if "$@" >"$work/out" 2>&1; then
        echo "ok   $name"
        pass=$((pass + 1))
    else
        echo "FAIL $name"
        sed 's/^/     | /' "$work/out" | tail -25
        fail=$((fail + 1))
    fi
}
# the subcommands listed by --help (lines "  NAME   abstract"; wrapped lines are indented further)
subcommands() { "$bin" --help | sed -n '/^SUBCOMMANDS:/,/^$/p' | sed -nE 's/^  ([a-z]+) .*/\1/p'; }
version=$("$bin" --version)

pages_current() { scripts/man.sh --check; }

# every option and flag of every command's --help appears in its rendered page
pages_cover_options() {
    local cmd page missing=0
    for cmd in '' $(subcommands); do
        page=man8/dmsnap${cmd:+-$cmd}.8
        [[ -f $page ]] || { echo "no page $page for 'dmsnap $cmd'"; missing=1; continue; }
        MANWIDTH=200 man -l "$page" 2>/dev/null | col -b >"$work/page.txt"
        for opt in $("$bin" $cmd --help | grep -oE '(^|[ ,])--[a-z][a-z0-9-]*' | tr -d ' ,' | sort -u); do
            grep -q -- "$opt" "$work/page.txt" || { echo "$page: $opt of 'dmsnap $cmd --help' is missing"; missing=1; }
        done
    done
    ((missing == 0)) && echo "$(subcommands | wc -l) subcommand pages cover their options"
}

deb=''
package_builds() {
    scripts/package-deb.sh --bin "$bin" || return 1
    deb=$(ls .build/deb/dmsnap_"$version"_*.deb) && [[ -f $deb ]]
}

lintian_no_error() {
    [[ -n $deb ]] || { echo "no package"; return 1; }
    lintian --no-tag-display-limit "$deb" >"$work/lintian.txt" 2>&1
    cat "$work/lintian.txt"
    ! grep -q '^E: ' "$work/lintian.txt"
}

package_contents() {
    [[ -n $deb ]] || { echo "no package"; return 1; }
    dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\./|/|' >"$work/files"
    local f bad=0 cmd
    for f in /usr/sbin/dmsnap /usr/share/man/man8/dmsnap.8.gz /usr/share/bash-completion/completions/dmsnap \
        /usr/share/zsh/vendor-completions/_dmsnap /usr/share/fish/vendor_completions.d/dmsnap.fish \
        /lib/systemd/system/dmsnap-activate.service /lib/systemd/system/dmsnap-monitor.service /etc/default/dmsnap /usr/share/doc/dmsnap/copyright /var/lib/dmsnap/ \
        /lib/udev/rules.d/63-dmsnap-volume.rules; do
        grep -qx -- "$f" "$work/files" || { echo "missing $f"; bad=1; }
    done
    for cmd in $(subcommands); do
        grep -qx "/usr/share/man/man8/dmsnap-$cmd.8.gz" "$work/files" || { echo "no page for $cmd"; bad=1; }
    done
    # Depends: the runtime packages of every library the binary links
    local depends
    depends=$(dpkg-deb -f "$deb" Depends)
    echo "Depends: $depends"
    for p in libdevmapper1.02.1 libblkid1 libzstd1 zlib1g libssl3 libc6 libstdc++6; do
        [[ ", $depends," == *", $p "* || ", $depends," == *", $p,"* ]] || { echo "Depends lacks $p"; bad=1; }
    done
    [[ $(dpkg-deb -f "$deb" Package Version | tr '\n' ' ') == "Package: dmsnap Version: $version " ]] || { echo "wrong Package/Version"; bad=1; }
    dpkg-deb -e "$deb" "$work/DEBIAN"
    grep -qx /etc/default/dmsnap "$work/DEBIAN/conffiles" || { echo "/etc/default/dmsnap is not a conffile"; bad=1; }
    # maintainer scripts: only a daemon-reload
    for s in "$work"/DEBIAN/post*; do
        if grep -vE '^\s*(#|$|set -e|if \[ -d /run/systemd/system \]; then|systemctl --system daemon-reload >/dev/null \|\| true|fi)' "$s" | grep -q .; then
            echo "$(basename "$s") does more than reload systemd:"; cat "$s"; bad=1
        fi
    done
    ((bad == 0))
}

unpacked_tree_works() {
    [[ -n $deb ]] || { echo "no package"; return 1; }
    local r=$work/root
    dpkg-deb -x "$deb" "$r" || return 1
    [[ $("$r/usr/sbin/dmsnap" --version) == "$version" ]] || { echo "dmsnap --version from the package: wrong"; return 1; }
    [[ $(stat -c %a "$r/var/lib/dmsnap") == 700 ]] || { echo "state directory mode $(stat -c %a "$r/var/lib/dmsnap")"; return 1; }
    MANWIDTH=100 man -l "$r/usr/share/man/man8/dmsnap-take.8.gz" 2>&1 | col -b >"$work/take.txt"
    grep -q -- '--freeze-timeout' "$work/take.txt" || { echo "man -l dmsnap-take.8.gz shows no --freeze-timeout"; head "$work/take.txt"; return 1; }
    MANWIDTH=100 man -l "$r/usr/share/man/man8/dmsnap.8.gz" 2>&1 | col -b >"$work/dmsnap.txt"
    for section in MODEL 'EXIT STATUS' FILES ENVIRONMENT EXAMPLES; do
        grep -q "^$section" "$work/dmsnap.txt" || { echo "dmsnap(8) has no $section section"; return 1; }
    done
    echo "dmsnap $version runs from the unpacked package; dmsnap(8) and dmsnap-take(8) render"
}

unit_verifies() {
    local r=$work/root unit
    mkdir -p "$work/units"
    for unit in dmsnap-activate.service dmsnap-monitor.service; do
        [[ -f $r/lib/systemd/system/$unit ]] || { echo "no $unit in the package"; return 1; }
        # verify the unit as installed, its ExecStart pointing at the unpacked binary
        sed "s|^ExecStart=/usr/sbin/dmsnap|ExecStart=$r/usr/sbin/dmsnap|" "$r/lib/systemd/system/$unit" >"$work/units/$unit"
        SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no "$work/units/$unit" 2>&1 | tee "$work/verify.txt"
        local rc=${PIPESTATUS[0]}
        ((rc == 0)) && ! grep -q "$unit" "$work/verify.txt" || { echo "$unit does not verify"; return 1; }
    done
}

install_and_uninstall() {
    local d=$work/destdir pre=/opt/dmsnap-test
    scripts/install.sh --prefix "$pre" --destdir "$d" --bin "$bin" || return 1
    [[ -x $d$pre/sbin/dmsnap && -f $d$pre/share/man/man8/dmsnap-take.8 && -f $d$pre/share/bash-completion/completions/dmsnap ]] ||
        { echo "files missing after install"; find "$d"; return 1; }
    grep -q "^ExecStart=$pre/sbin/dmsnap activate --all" "$d$pre/lib/systemd/system/dmsnap-activate.service" || { echo "unit not pointed at the prefix"; return 1; }
    grep -q "^ExecStart=$pre/sbin/dmsnap monitor " "$d$pre/lib/systemd/system/dmsnap-monitor.service" || { echo "monitor unit not pointed at the prefix"; return 1; }
    [[ $(stat -c %a "$d/var/lib/dmsnap") == 700 ]] || { echo "state directory not 0700"; return 1; }
    # an edited config is kept at uninstall; a foreign file in the way stops an install
    echo "DMSNAP_STATE_DIR=/srv/dmsnap" >>"$d/etc/default/dmsnap"
    touch "$d$pre/sbin/other-tool"
    scripts/install.sh --prefix "$pre" --destdir "$d" --uninstall | tee "$work/un.txt" || return 1
    grep -q "kept /etc/default/dmsnap" "$work/un.txt" || { echo "the edited config was not reported kept"; return 1; }
    local left
    left=$(cd "$d" && find . -mindepth 1 | sort | tr '\n' ' ')
    [[ $left == "./etc ./etc/default ./etc/default/dmsnap ./opt ./opt/dmsnap-test ./opt/dmsnap-test/sbin ./opt/dmsnap-test/sbin/other-tool " ]] ||
        { echo "left after uninstall: $left"; return 1; }
    # a file the script did not install, in the way: refused, nothing copied, the file untouched
    rm -rf "$d"
    mkdir -p "$d$pre/share/man/man8"
    echo mine >"$d$pre/share/man/man8/dmsnap-take.8"
    if scripts/install.sh --prefix "$pre" --destdir "$d" --bin "$bin" >"$work/in.txt" 2>&1; then
        echo "installed over a foreign file"; return 1
    fi
    cat "$work/in.txt"
    [[ $(cat "$d$pre/share/man/man8/dmsnap-take.8") == mine && ! -e $d$pre/sbin/dmsnap ]] || { echo "the refused install changed files"; return 1; }
}

completion_lists() {
    local r=$work/root state=$work/state
    mkdir -p "$state" && chmod 700 "$state"
    echo '{}' >"$state/nightly.json"
    echo '{}' >"$state/weekly.json"
    DMSNAP_STATE_DIR=$state PATH="$r/usr/sbin:$PATH" bash --norc --noprofile -c '
        source /usr/share/bash-completion/bash_completion 2>/dev/null || true
        source "'"$r"'/usr/share/bash-completion/completions/dmsnap"
        complete_words() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; COMPREPLY=(); _dmsnap "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"; printf "%s\n" "${COMPREPLY[@]}" | sort | tr "\n" " "; echo; }
        echo "subcommands: $(complete_words dmsnap "")"
        echo "merge: $(complete_words dmsnap merge "")"
        echo "status w: $(complete_words dmsnap status w)"
        echo "status -o: $(complete_words dmsnap status -o set,dev)"
    ' | tee "$work/comp.txt"
    grep -q "^subcommands: .*take .*" "$work/comp.txt" && grep -q "^subcommands: .*merge" "$work/comp.txt" &&
        grep -qx "merge: nightly weekly " "$work/comp.txt" && grep -qx "status w: weekly " "$work/comp.txt" &&
        grep -qx "status -o: set,device " "$work/comp.txt"
}

check "manual pages are current (scripts/man.sh --check)" pages_current
check "every command's page shows every option of its --help" pages_cover_options
check "the Debian package builds (scripts/package-deb.sh)" package_builds
check "lintian reports no error on the package" lintian_no_error
check "package: binary, a page per subcommand, completions, unit, conffile, Depends" package_contents
check "from the unpacked package: dmsnap --version, man -l" unpacked_tree_works
check "systemd-analyze verify passes on dmsnap-activate.service and dmsnap-monitor.service" unit_verifies
check "install.sh installs, uninstalls only its own unchanged files, refuses a foreign file" install_and_uninstall
check "bash completion lists subcommands, recorded sets and status fields" completion_lists
echo "install: $pass passed, $fail failed"
((fail == 0))
