"""What this machine has to build and run firmware, and where we keep what we make from it.

Two kinds of things are made once and kept, per user, in one cache folder
(:func:`cache_dir`): ``$ARDUINO_MESH_CACHE`` if set, else ``$XDG_CACHE_HOME/arduino-mesh``,
else ``~/.cache/arduino-mesh``:

- ``firmware/``: each sketch built (its ELF, HEX and generated ``.cpp``) under a hash of
  everything that decides its bytes, and the Arduino core compiled once per set of flags
  (:mod:`nodes.firmware.build`);
- ``simavr/``: the small C helper through which Python drives simavr, compiled with the
  system's C compiler on first use, under a hash of its source and simavr's headers
  (:mod:`nodes.firmware.simavr`).

Both are safe to delete: what is missing is made again. Nothing goes into the project's
folder or its ``.state``: a build is the same for every project of the same user.

What is missing is one line naming the Debian packages to install (a
:class:`~mesh.errors.FirmwareError`): :data:`AVR_PACKAGES` to build, :data:`SIMAVR_PACKAGES` to
simulate.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from mesh.errors import FirmwareError

__all__ = [
    "ARDUINO_ROOT",
    "AVR_PACKAGES",
    "CACHE_ENV",
    "SIMAVR_INCLUDE",
    "SIMAVR_PACKAGES",
    "Toolchain",
    "cache_dir",
    "find_simavr",
]

#: The environment variable that moves the cache (tests give each session its own).
CACHE_ENV = "ARDUINO_MESH_CACHE"
#: The Debian packages that build a sketch for the Uno.
AVR_PACKAGES = "gcc-avr avr-libc binutils-avr arduino-core-avr"
#: The Debian packages that simulate it: simavr's library and headers, and a C compiler for our helper.
SIMAVR_PACKAGES = "libsimavr-dev gcc"
#: Where Debian's arduino-core-avr puts the Arduino core for AVR boards.
ARDUINO_ROOT = Path("/usr/share/arduino/hardware/arduino/avr")
#: Where Debian's libsimavr-dev puts simavr's headers.
SIMAVR_INCLUDE = Path("/usr/include/simavr")
_AVR_LIBC_VERSION = Path("/usr/lib/avr/include/avr/version.h")


def cache_dir() -> Path:
    """The user's cache for firmware builds and the simavr helper (see the module's docstring)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "arduino-mesh"


@dataclasses.dataclass(frozen=True)
class Toolchain:
    """The AVR compiler, its tools and the Arduino core found on this machine."""

    gcc: str
    gxx: str
    gcc_ar: str
    objcopy: str
    size: str
    core_dir: Path
    variant_dir: Path
    #: The Arduino libraries that come with the core (Wire, SPI, EEPROM, SoftwareSerial...): ``NAME/src/``.
    libraries_dir: Path
    #: A digest of the compiler's version, avr-libc's and the core's files: part of every build's hash.
    version: str

    @staticmethod
    @functools.cache
    def find(root: Path = ARDUINO_ROOT, variant: str = "standard") -> Toolchain:
        """The toolchain (looked for once per process), or FirmwareError: one line naming the packages."""
        tools: dict[str, str] = {}
        missing: list[str] = []
        for name in ("avr-gcc", "avr-g++", "avr-gcc-ar", "avr-objcopy", "avr-size"):
            found = shutil.which(name)
            if found is None:
                missing.append(name)
            else:
                tools[name] = found
        core_dir = root / "cores" / "arduino"
        variant_dir = root / "variants" / variant
        if not (core_dir / "Arduino.h").is_file() or not (variant_dir / "pins_arduino.h").is_file():
            missing.append(f"the Arduino core in {root}")
        if missing:
            raise FirmwareError([f"AVR toolchain missing ({', '.join(missing)}): apt-get install {AVR_PACKAGES}"])
        version = subprocess.run([tools["avr-gcc"], "--version"], capture_output=True, text=True, check=False).stdout
        digest = hashlib.sha256(version.encode())
        if _AVR_LIBC_VERSION.is_file():
            digest.update(_AVR_LIBC_VERSION.read_bytes())
        # The core's files by name, size and time: cheap, and a new package changes them.
        for path in sorted([*core_dir.iterdir(), *variant_dir.iterdir()]):
            stat = path.stat()
            digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
        return Toolchain(
            gcc=tools["avr-gcc"],
            gxx=tools["avr-g++"],
            gcc_ar=tools["avr-gcc-ar"],
            objcopy=tools["avr-objcopy"],
            size=tools["avr-size"],
            core_dir=core_dir,
            variant_dir=variant_dir,
            libraries_dir=root / "libraries",
            version=digest.hexdigest()[:16],
        )

    def target_flags(self, mcu: str, f_cpu: int) -> list[str]:
        """What every compilation gets: the target, the core's macros (boards.txt's Uno) and its include folders."""
        return [
            f"-mmcu={mcu}",
            f"-DF_CPU={f_cpu}L",
            "-DARDUINO=10807",
            "-DARDUINO_AVR_UNO",
            "-DARDUINO_ARCH_AVR",
            f"-I{self.core_dir}",
            f"-I{self.variant_dir}",
        ]


@dataclasses.dataclass(frozen=True)
class Simavr:
    """simavr's headers and library, and the C compiler that builds our helper against them."""

    cc: str
    include: Path
    #: A digest of the headers the helper is compiled against: part of the helper's hash.
    version: str


@functools.cache
def find_simavr() -> Simavr:
    """simavr and a C compiler (looked for once per process), or FirmwareError: one line naming the packages."""
    cc = shutil.which("gcc") or shutil.which("cc")
    libraries = [*Path("/usr/lib").glob("*/libsimavr.so"), Path("/usr/lib/libsimavr.so")]
    missing = []
    if cc is None:
        missing.append("a C compiler")
    if not (SIMAVR_INCLUDE / "sim_avr.h").is_file():
        missing.append(str(SIMAVR_INCLUDE / "sim_avr.h"))
    if not any(path.exists() for path in libraries):
        missing.append("libsimavr.so")
    if missing:
        raise FirmwareError([f"simavr missing ({', '.join(missing)}): apt-get install {SIMAVR_PACKAGES}"])
    assert cc is not None
    digest = hashlib.sha256()
    for header in ("sim_avr.h", "sim_elf.h", "sim_irq.h", "sim_io.h", "avr_uart.h", "avr_ioport.h"):
        path = SIMAVR_INCLUDE / header
        if path.is_file():
            digest.update(path.read_bytes())
    return Simavr(cc=cc, include=SIMAVR_INCLUDE, version=digest.hexdigest()[:16])
