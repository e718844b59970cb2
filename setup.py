"""Build hook only (metadata is in setup.cfg): ship the auto-activation .pth file.

A ``.pth`` file must sit at the top of site-packages to be read at start-up,
and setuptools has no declarative way to put one there. A regular build copies
it next to the packages in the build directory, whence install puts it into
site-packages. An editable install (``pip install -e``) installs none of the
built files but the top of its wheel, where setuptools' editable_wheel points
``install_lib``: the hook goes there, so both set-ups start the same way.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PTH_FILE = "g4f_autonomous_autoload.pth"


class BuildWithPth(build_py):
    def run(self) -> None:
        super().run()
        self.copy_file(str(Path(__file__).parent / PTH_FILE), self._pth_target(), preserve_mode=False)

    def get_outputs(self, include_bytecode: bool = True) -> list:
        outputs = super().get_outputs(include_bytecode)
        # An editable build's outputs are what its strategy links from the build directory: not the hook.
        return outputs if self.editable_mode else [*outputs, self._pth_target()]

    def _pth_target(self) -> str:
        top = self.get_finalized_command("install").install_lib if self.editable_mode else self.build_lib
        return str(Path(top) / PTH_FILE)


setup(cmdclass={"build_py": BuildWithPth})
