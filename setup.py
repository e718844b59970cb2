"""Build hook only (metadata is in setup.cfg): ship the auto-activation .pth file.

A ``.pth`` file must sit at the top of site-packages to be read at start-up,
and setuptools has no declarative way to put one there, so ``build_py``
copies it next to the packages in the build directory.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PTH_FILE = "g4f_autonomous_autoload.pth"


class BuildWithPth(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / PTH_FILE
        self.copy_file(str(Path(__file__).parent / PTH_FILE), str(target), preserve_mode=False)

    def get_outputs(self, include_bytecode: bool = True) -> list:
        return [*super().get_outputs(include_bytecode), str(Path(self.build_lib) / PTH_FILE)]


setup(cmdclass={"build_py": BuildWithPth})
