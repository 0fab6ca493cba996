"""Build the example against the installed ringbus: its C API header and .pxd ship in the
wheel, and ringbus.get_include() says where they are. The commands are in README.md."""
import ringbus
from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [Extension("nogil_producer", ["nogil_producer.pyx"],
                   include_dirs=[ringbus.get_include()])],
        language_level=3,
        build_dir="build",          # the generated .c stays out of the source tree
    ),
)
