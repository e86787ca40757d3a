"""Builds the native launchers (bin/launcher.c) as `mrun` and `containerd-shim-mrun-v2`, beside
the Python launchers they fall back to, and `mrun-init` (bin/init.c, static: `mrun run --init`
puts it in containers whose images may hold no C library). Everything else is in pyproject.toml.

Without a C compiler the Python launchers are installed under both names instead, and mrun works
as before, only slower (each call starts an interpreter: 8-10 ms); without a static C library
there is no mrun-init, and `--init` says so.
"""

import os
import shlex
import shutil
import subprocess
import sysconfig

from setuptools import Distribution, setup

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join("bin", "launcher.c")
INIT_SOURCE = os.path.join("bin", "init.c")
# installed name -> (the request kind it sends the template, the Python launcher it falls back to)
LAUNCHERS = {
    "mrun": ("cli", "mrun-python"),
    "containerd-shim-mrun-v2": ("shim", "containerd-shim-mrun-v2-python"),
}

_build_scripts = Distribution().get_command_class("build_scripts")


class build_scripts(_build_scripts):  # noqa: N801 - the command's own name
    def run(self) -> None:
        super().run()
        cc = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
        for name, (kind, fallback) in LAUNCHERS.items():
            target = os.path.join(self.build_dir, name)
            command = [*cc, "-O2", "-Wall", f'-DLAUNCHER_KIND="{kind}"', f'-DCOLD_SCRIPT="{fallback}"',
                       "-o", target, os.path.join(HERE, SOURCE)]
            try:
                subprocess.run(command, check=True)
            except (OSError, subprocess.CalledProcessError) as e:
                self.warn(f"no native {name} ({e}): installing the Python launcher under its name")
                shutil.copy2(os.path.join(self.build_dir, fallback), target)
        init = [*cc, "-O2", "-Wall", "-static", "-o", os.path.join(self.build_dir, "mrun-init"),
                os.path.join(HERE, INIT_SOURCE)]
        try:
            subprocess.run(init, check=True)
        except (OSError, subprocess.CalledProcessError) as e:
            self.warn(f"no mrun-init ({e}): `mrun run --init` will be refused")


class PlatformDistribution(Distribution):
    """The wheel holds a compiled program: tag it for this platform, not py3-none-any."""

    def has_ext_modules(self) -> bool:
        return True


setup(cmdclass={"build_scripts": build_scripts}, distclass=PlatformDistribution)
