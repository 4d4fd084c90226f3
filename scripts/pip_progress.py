"""`make setup`'s pip install, with a few lines of progress instead of silence or pip's full log.

    python scripts/pip_progress.py LOG -- <pip arguments>

Runs ``python -m pip <pip arguments>`` with this interpreter, writes pip's
whole output to LOG, and prints one line per 25 packages collected plus
pip's closing summary, so a first ``make setup`` (about two minutes) shows
what it is doing without flooding CI logs. Exits with pip's exit code; on
failure the last lines of the log are printed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

EVERY = 25  # packages between progress lines


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    log_path, pip_args = Path(argv[0]), argv[2:]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    collected = 0
    files = [a for a in pip_args if a.endswith((".txt", ".toml"))]
    print(f"pip: installing {', '.join(files) or ' '.join(pip_args)[:80]}; full log: {log_path}", flush=True)
    with log_path.open("w", encoding="utf-8") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "pip", *pip_args, "--progress-bar", "off"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert process.stdout is not None
        for line in process.stdout:
            log.write(line)
            if line.startswith(("Collecting ", "Requirement already satisfied")):
                collected += 1
                if collected % EVERY == 0:
                    print(f"pip: {collected} packages resolved ({time.monotonic() - started:.0f} s)", flush=True)
            elif line.startswith("Successfully installed"):
                print(
                    f"pip: installed {len(line.split()) - 2} package(s) in {time.monotonic() - started:.0f} s",
                    flush=True,
                )
        code = process.wait()
    if code:
        tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-30:]
        print("\n".join(tail), file=sys.stderr)
        print(f"pip failed (exit {code}); full log: {log_path}", file=sys.stderr)
    elif not collected:
        print("pip: nothing to do", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
