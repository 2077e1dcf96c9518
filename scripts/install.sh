#!/usr/bin/env bash
# install.sh - installs dmsnap like a system tool: the binary into PREFIX/sbin, the manual pages
# (man8/), shell completions (bash, zsh, fish), the systemd units, an example /etc/default/dmsnap
# and the state directory (mode 0700). It never touches a file it did not install: an existing
# file in the way stops the install before anything is copied, and --uninstall removes only what
# the manifest (PREFIX/share/dmsnap/install-manifest) lists, and only while unchanged.
#   scripts/install.sh [--prefix PREFIX] [--destdir DIR] [--bin PATH] [--unitdir DIR]
#                      [--package] [--uninstall]
#     --prefix   default /usr/local
#     --destdir  stage under DIR (for packaging); paths inside keep PREFIX
#     --bin      install this dmsnap binary instead of building one (swift build -c release)
#     --unitdir  the systemd unit directory (default PREFIX/lib/systemd/system)
#     --package  for a package build: no manifest (the package manager keeps track)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
prefix=/usr/local destdir='' bin='' unitdir='' uninstall=0 package=0
while (($#)); do
    case $1 in
    --prefix) prefix=$2; shift 2 ;;
    --destdir) destdir=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --unitdir) unitdir=$2; shift 2 ;;
    --package) package=1; shift ;;
    --uninstall) uninstall=1; shift ;;
    *) echo "install.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
[[ $prefix == /* ]] || { echo "install.sh: --prefix must be an absolute path" >&2; exit 2; }
unitdir=${unitdir:-$prefix/lib/systemd/system}
# udev rules: under /lib for the system prefix (as Debian keeps them), else under the prefix
udevdir=${udevdir:-$([[ $prefix == /usr ]] && echo /lib/udev/rules.d || echo "$prefix/lib/udev/rules.d")}
root=${destdir%/}
manifest=$prefix/share/dmsnap/install-manifest

if ((uninstall)); then
    [[ -f $root$manifest ]] || { echo "install.sh: nothing to uninstall: no $root$manifest" >&2; exit 1; }
    kept=0
    # lines: "f SHA256 PATH" (a file) or "d - PATH" (a directory this install made)
    while read -r kind sum path; do
        [[ $kind == f ]] || continue
        if [[ ! -e $root$path ]]; then continue; fi
        if [[ $(sha256sum <"$root$path" | cut -d' ' -f1) == "$sum" ]]; then
            rm -f -- "$root$path"
        else
            echo "install.sh: kept $path: changed since it was installed"
            kept=$((kept + 1))
        fi
    done <"$root$manifest"
    # then the directories this install made, deepest first, if empty
    dirs=$(grep '^d ' "$root$manifest.dirs" 2>/dev/null | cut -d' ' -f3- | sort -r || true)
    rm -f -- "$root$manifest" "$root$manifest.dirs"
    while read -r dir; do
        [[ -n $dir ]] && { rmdir -- "$root$dir" 2>/dev/null || true; }
    done <<<"$dirs"
    echo "uninstalled dmsnap from $root$prefix${kept:+ ($kept changed file(s) kept)}"
    exit 0
fi

if [[ -z $bin ]]; then
    swift build -c release --product dmsnap >/dev/null
    bin=$(swift build -c release --show-bin-path)/dmsnap
fi
[[ -x $bin ]] || { echo "install.sh: no dmsnap binary at $bin" >&2; exit 1; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
# what goes where: "MODE SOURCE TARGET"
plan=()
add() { plan+=("$1 $2 $3"); }
cp "$bin" "$stage/dmsnap"
add 0755 "$stage/dmsnap" "$prefix/sbin/dmsnap"
for page in man8/*.8; do
    add 0644 "$page" "$prefix/share/man/man8/$(basename "$page")"
done
# (bash-completion sources the file: no #! line)
"$bin" --generate-completion-script bash | sed '1{/^#!/d}' >"$stage/dmsnap.bash"
"$bin" --generate-completion-script zsh >"$stage/_dmsnap"
"$bin" --generate-completion-script fish >"$stage/dmsnap.fish"
add 0644 "$stage/dmsnap.bash" "$prefix/share/bash-completion/completions/dmsnap"
add 0644 "$stage/_dmsnap" "$prefix/share/zsh/vendor-completions/_dmsnap"
add 0644 "$stage/dmsnap.fish" "$prefix/share/fish/vendor_completions.d/dmsnap.fish"
for unit in dmsnap-activate.service dmsnap-monitor.service; do
    sed "s|^ExecStart=/usr/sbin/dmsnap |ExecStart=$prefix/sbin/dmsnap |" "dist/systemd/$unit" >"$stage/$unit"
    add 0644 "$stage/$unit" "$unitdir/$unit"
done
add 0644 dist/default.dmsnap /etc/default/dmsnap
add 0644 dist/udev/63-dmsnap-volume.rules "$udevdir/63-dmsnap-volume.rules"

# refuse before copying anything: a file in the way that an earlier install did not put there
declare -A ours=()
if [[ -f $root$manifest ]]; then
    while read -r kind sum path; do ours[$path]=1; done <"$root$manifest"
fi
for entry in "${plan[@]}"; do
    target=${entry##* }
    if [[ -e $root$target || -L $root$target ]] && [[ -z ${ours[$target]:-} ]]; then
        echo "install.sh: $root$target exists and was not installed by this script; nothing was installed" >&2
        exit 1
    fi
done

[[ -z $root ]] || mkdir -p -- "$root"
made=()
mkdirs() { # DIR: like mkdir -p, remembering each directory it makes
    local d=$1 missing=()
    while [[ $d != / && ! -d $root$d ]]; do missing+=("$d"); d=$(dirname "$d"); done
    local i
    for ((i = ${#missing[@]} - 1; i >= 0; i--)); do
        mkdir -m 0755 -- "$root${missing[i]}"
        made+=("${missing[i]}")
    done
}
lines=()
for entry in "${plan[@]}"; do
    read -r mode source target <<<"$entry"
    if [[ $target == /etc/default/dmsnap && -e $root$target && -n ${ours[$target]:-} ]]; then
        # an earlier install's config: the admin may have edited it; leave it
        lines+=("f $(grep " $target\$" "$root$manifest" | cut -d' ' -f2) $target")
        continue
    fi
    mkdirs "$(dirname "$target")"
    install -m "$mode" -- "$source" "$root$target"
    lines+=("f $(sha256sum <"$root$target" | cut -d' ' -f1) $target")
done
# the state directory: root only
if [[ ! -d $root/var/lib/dmsnap ]]; then
    mkdirs /var/lib
    mkdir -m 0700 -- "$root/var/lib/dmsnap"
    made+=(/var/lib/dmsnap)
fi
chmod 0700 "$root/var/lib/dmsnap"
if ((!package)); then
    mkdirs "$(dirname "$manifest")"
    printf '%s\n' "${lines[@]}" >"$root$manifest"
    # a reinstall keeps the directories the first install made
    { cat "$root$manifest.dirs" 2>/dev/null || true; for d in "${made[@]}"; do echo "d - $d"; done; } |
        sort -u >"$root$manifest.dirs.new"
    mv "$root$manifest.dirs.new" "$root$manifest.dirs"
fi
echo "installed dmsnap into $root$prefix (${#lines[@]} files)"
