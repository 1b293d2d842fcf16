#!/usr/bin/env bash
# Clone the public PyTorch programs that tests/test_programs.py and benchmarks/programs/run_programs.py run on
# tinyattn, at the commits they were checked at, into $TINYATTN_PROGRAMS (default ~/.cache/tinyattn/programs).
# They are not part of this repository.
set -euo pipefail
dest=${TINYATTN_PROGRAMS:-$HOME/.cache/tinyattn/programs}
mkdir -p "$dest"
fetch() {  # name url commit
    if [ ! -d "$dest/$1/.git" ]; then git clone --quiet "$2" "$dest/$1"; fi
    git -C "$dest/$1" checkout --quiet "$3"
    echo "$1 at $3 in $dest/$1"
}
fetch nanoGPT https://github.com/karpathy/nanoGPT 3adf61e154c3fe3fca428ad6bc3818b27a3b8291
fetch minGPT https://github.com/karpathy/minGPT 37baab71b9abea1b76ab957409a1cc2fbfba8a26
