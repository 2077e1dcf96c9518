#!/usr/bin/env bash
# man.sh - the manual pages in man8/, generated from the command definitions by
# swift-argument-parser's generate-manual plugin (one page per command: dmsnap.8,
# dmsnap-take.8, ...), with the hand-written sections of dist/man/dmsnap-sections.mdoc
# (model, exit status, files, environment, examples) added to dmsnap.8.
#   scripts/man.sh           regenerate man8/
#   scripts/man.sh --check   fail (exit 1) when man8/ is not what the commands generate now,
#                            naming each page that differs (the .Dd date line is ignored)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
check=0
[[ ${1:-} == --check ]] && check=1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
swift package plugin generate-manual --configuration debug --multi-page --section 8 --authors "the dmsnap developers" \
    >"$out/plugin.log" 2>&1 || { cat "$out/plugin.log" >&2; exit 1; }
gen=.build/plugins/GenerateManual/outputs/dmsnap
mkdir -p "$out/man8"
# dmsnap.take.8 -> dmsnap-take.8 (as git's pages, so `man dmsnap-take` finds it); the root page
# gets the hand-written parts; each command's page points to dmsnap(8) for the exit codes.
python3 - "$gen" "$out/man8" dist/man/dmsnap-sections.mdoc <<'PY'
import os, re, sys
gen, dest, extra = sys.argv[1:4]
text = open(extra).read()
description = text.split('.\\" @description', 1)[1].split("\n", 1)[1].split('.\\" @sections', 1)[0]
sections = text.split('.\\" @sections', 1)[1].split("\n", 1)[1]
for name in sorted(os.listdir(gen)):
    if not name.endswith(".8"):
        continue
    page = open(os.path.join(gen, name)).read()
    page = re.sub(r"^\.Dt DMSNAP\.([A-Z]+) 8", r".Dt DMSNAP-\1 8", page, flags=re.M)
    page = re.sub(r"^\.Xr dmsnap\.([a-z]+) 8", r".Xr dmsnap-\1 8", page, flags=re.M)
    exit_std = '.Sh "EXIT STATUS"\n.Ex -std\n'
    # an empty line is a groff warning: a paragraph break
    page = re.sub(r"\n\n+", "\n.Pp\n", page)
    # NAME says dmsnap-take (what whatis and `man dmsnap-take` look for); the rest of the page
    # spells the command as it is typed
    m = re.search(r'^\.Nm "dmsnap ([a-z]+)"$', page, flags=re.M)
    if m:
        sub = m.group(1)
        page = page.replace(m.group(0), f".Nm dmsnap-{sub}", 1)
        page = re.sub(r"^\.Nm$", f'.Nm "dmsnap {sub}"', page, flags=re.M)
    if name == "dmsnap.8":
        head, rest = page.split(".Sh DESCRIPTION\n", 1)
        rest = rest[rest.index(".Bl -tag"):]
        page = head + ".Sh DESCRIPTION\n" + description + rest
        page = page.replace(exit_std, "")
        i = page.index('.Sh "SEE ALSO"')
        page = page[:i] + sections + page[i:]
    else:
        page = page.replace(exit_std, '.Sh "EXIT STATUS"\n0 on success; 3 when refused (nothing was changed); the other codes are in\n.Xr dmsnap 8 .\n.Sh "SEE ALSO"\n.Xr dmsnap 8\n')
    open(os.path.join(dest, name.replace("dmsnap.", "dmsnap-", 1) if name != "dmsnap.8" else name), "w").write(page)
PY
if ((check)); then
    stale=()
    for f in "$out"/man8/*.8 man8/*.8; do
        n=$(basename "$f")
        if ! diff -q <(grep -v '^\.Dd ' "$out/man8/$n" 2>/dev/null) <(grep -v '^\.Dd ' "man8/$n" 2>/dev/null) >/dev/null; then
            stale+=("$n")
        fi
    done
    if ((${#stale[@]})); then
        printf 'man8/ is out of date (run scripts/man.sh): %s\n' "$(printf '%s\n' "${stale[@]}" | sort -u | tr '\n' ' ')" >&2
        exit 1
    fi
    echo "man8/: $(ls man8/*.8 | wc -l) pages, current"
else
    rm -rf man8
    cp -r "$out/man8" man8
    echo "man8/: $(ls man8/*.8 | wc -l) pages written"
fi
