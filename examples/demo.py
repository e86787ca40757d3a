"""The quick-start job: build a busybox bundle and run it with mrun, as runc would run it.

The wasm container that will run beside it arrives with the wasm backend; this file grows
then, and the README says so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from busybox_bundle import make_bundle  # noqa: E402

MRUN = os.path.join(os.path.dirname(sys.executable), "mrun")


def main() -> int:
    work = tempfile.mkdtemp(prefix="mrun-quickstart-")
    root = os.path.join(work, "state")
    try:
        bundle = os.path.join(work, "linux")
        os.makedirs(bundle)
        script = (
            'echo "hello from a Linux container: pid $$, hostname $(hostname), '
            '$(ls /sys/class/net | wc -l) interface(s)"'
        )
        make_bundle(bundle, ["sh", "-c", script], cgroups_path="/mrun-quickstart/linux", hostname="mrun-linux")
        print(f"$ mrun explain -b {bundle}")
        subprocess.run([MRUN, "--root", root, "explain", "-b", bundle], check=True)
        print(f"$ mrun run -b {bundle} quickstart-linux")
        return subprocess.run([MRUN, "--root", root, "run", "-b", bundle, "quickstart-linux"]).returncode
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
