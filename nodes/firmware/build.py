"""Building a sketch (``.ino``) into firmware for the Uno (ATmega328P at 16 MHz), cached by content hash.

The way the Arduino IDE builds, with Debian's AVR toolchain (:class:`~nodes.firmware.toolchain.Toolchain`):

1. the ``.ino`` becomes a ``.cpp`` (:func:`nodes.firmware.ino.preprocess`);
2. the Arduino core is compiled once per set of flags and kept as an archive (``core.a``), and so
   is each Arduino library the sketch includes (``#include <Wire.h>``: the core's own ``Wire``,
   ``SPI``, ``EEPROM``, ``SoftwareSerial``..., found by their ``src/`` holding that header);
3. the sketch is compiled and linked against them; its ELF and Intel HEX are kept under a hash
   of everything that decides their bytes: the sketch's bytes and name, the flags, the
   toolchain's, the core's and the libraries' versions, and :data:`GENERATOR`.

Everything lands in ``firmware/`` of the user's cache (:func:`~nodes.firmware.toolchain.cache_dir`),
each entry published by an atomic rename, so that two builds at once never see half of one.
A build that finds its entry does nothing (``cached``): a sketch is rebuilt exactly when it changes.

Errors are a :class:`~mesh.errors.FirmwareError`, one line per error naming the sketch's own
file and line (``firmware/lamp.ino:7:20: error: ...``), never the generated ``.cpp``; a missing
toolchain is one line naming the Debian packages. gcc's flags are ``platform.txt``'s, with what
Debian's gcc-avr 5.4 needs besides: ``-std=gnu++11 -fno-threadsafe-statics`` (a ``static`` local
of a class type) and ``-DDECIMAL_DIG=17`` (avr-libc 2.0 leaves it undefined, the core's
``WString.cpp`` uses it).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from mesh.errors import FirmwareError

from .ino import included, parse_errors, preprocess
from .toolchain import Toolchain, cache_dir

__all__ = ["MAX_SOURCE", "UNO_F_CPU", "UNO_MCU", "Firmware", "build"]

#: Bumped whenever the generated .cpp or the recipe changes in a way the flags do not show.
GENERATOR = "1"
#: The Uno, as boards.txt says (uno.build.*), and its upload limits (uno.upload.maximum_*).
UNO_MCU = "atmega328p"
UNO_F_CPU = 16_000_000
UNO_FLASH = 32_256  # 32 KiB less the 512-byte bootloader
UNO_RAM = 2_048
#: The largest sketch file read, in bytes: a sketch is untrusted input too.
MAX_SOURCE = 1_000_000
#: Seconds one compiler run may take before the build gives up.
COMPILE_TIMEOUT = 300.0

COMMON_FLAGS = (
    "-Os",
    "-g",
    "-w",
    "-flto",
    "-ffunction-sections",
    "-fdata-sections",
    "-fdiagnostics-color=never",
    "-fno-diagnostics-show-caret",
    "-DDECIMAL_DIG=17",
)
C_FLAGS = ("-std=gnu11", "-fno-fat-lto-objects")
CXX_FLAGS = ("-std=gnu++11", "-fpermissive", "-fno-exceptions", "-fno-threadsafe-statics", "-Wno-error=narrowing")
S_FLAGS = ("-x", "assembler-with-cpp")
LINK_FLAGS = ("-w", "-Os", "-g", "-flto", "-fuse-linker-plugin", "-Wl,--gc-sections")


@dataclasses.dataclass(frozen=True)
class Firmware:
    """A sketch built: where its ELF and HEX are, and how it came about."""

    elf: Path
    hex: Path
    key: str  # the content hash: the cache entry's name
    cached: bool  # nothing had to be compiled
    seconds: float  # wall time of the build (of the lookup, when cached)
    flash: int  # bytes of flash: .text + .data
    ram: int  # bytes of static RAM: .data + .bss (the stack comes on top)


def build(
    sketch: str | os.PathLike[str],
    *,
    shown: str | None = None,
    cache: Path | None = None,
    mcu: str = UNO_MCU,
    f_cpu: int = UNO_F_CPU,
    jobs: int | None = None,
) -> Firmware:
    """Build the ``.ino`` at ``sketch`` (nothing is compiled when its hash is in the cache).

    ``shown`` is how errors name the sketch (default: its path as given). Raises
    :class:`~mesh.errors.FirmwareError`: one line per error, or one naming the packages to install.
    """
    started = time.perf_counter()
    path = Path(sketch)
    shown = shown or str(sketch)
    name = path.name
    try:
        if path.stat().st_size > MAX_SOURCE:
            raise FirmwareError([f"{shown}: error: the sketch is over {MAX_SOURCE:,} bytes"])
        source = path.read_bytes()
    except OSError as exc:
        raise FirmwareError([f"{shown}: error: cannot read it: {exc.strerror or exc}"]) from None
    tools = Toolchain.find()
    folder = (cache or cache_dir()) / "firmware"
    folder.mkdir(parents=True, exist_ok=True)
    target = tools.target_flags(mcu, f_cpu)
    libraries = _libraries(tools, included(source.decode("utf-8", errors="replace")))
    headers = [f"-I{library}" for library in libraries]
    versions = [(library.parent.name, _files_digest(_sources(library, every=True))) for library in libraries]
    key = _digest(
        ("sketch", GENERATOR, tools.version, name, hashlib.sha256(source).hexdigest(), target, LINK_FLAGS, versions)
    )
    entry = folder / f"sketch-{key}"
    elf, hexfile, meta = entry / f"{path.stem}.elf", entry / f"{path.stem}.hex", entry / "meta.json"
    if meta.is_file() and elf.is_file() and hexfile.is_file():
        sizes = json.loads(meta.read_text())
        return Firmware(elf, hexfile, key, True, time.perf_counter() - started, sizes["flash"], sizes["ram"])
    jobs = jobs or os.cpu_count() or 1
    core = _archive(tools, folder, "core", _sources(tools.core_dir), target, jobs)
    archives = [
        _archive(tools, folder, f"lib-{library.parent.name}", sources, [*target, *headers], jobs)
        for library in libraries
        if (sources := _sources(library))  # EEPROM is all header
    ]
    work = Path(tempfile.mkdtemp(prefix="sketch-", dir=folder))
    try:
        cpp = work / f"{name}.cpp"
        cpp.write_text(preprocess(source.decode("utf-8", errors="replace"), name))
        generated = (str(cpp), cpp.name)
        compile_sketch = [tools.gxx, "-c", *COMMON_FLAGS, *CXX_FLAGS, *target, *headers, cpp.name, "-o", "sketch.o"]
        _compile(compile_sketch, work, name, shown)
        _compile(
            [tools.gcc, *LINK_FLAGS, f"-mmcu={mcu}", "-o", elf.name, "sketch.o", *map(str, archives), str(core), "-lm"],
            work,
            name,
            shown,
            generated,
            what="link",
        )
        flash, ram = _sizes(tools, work / elf.name)
        if mcu == UNO_MCU and (flash > UNO_FLASH or ram > UNO_RAM):
            raise FirmwareError(
                [f"{shown}: error: too big for an Uno: {flash:,} bytes of flash (at most {UNO_FLASH:,}), "
                 f"{ram:,} bytes of RAM (at most {UNO_RAM:,})"]
            )  # fmt: skip
        _compile([tools.objcopy, "-O", "ihex", "-R", ".eeprom", elf.name, hexfile.name], work, name, shown)
        (work / "meta.json").write_text(json.dumps({"sketch": name, "flash": flash, "ram": ram, "mcu": mcu}))
        (work / "sketch.o").unlink()  # the generated .cpp stays beside the ELF, for whoever debugs the firmware
        _publish(work, entry)
        return Firmware(elf, hexfile, key, False, time.perf_counter() - started, flash, ram)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(command: Sequence[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """A tool's run; LC_ALL=C so that gcc quotes in ASCII ('x'), whatever the user's locale."""
    try:
        return subprocess.run(
            list(command),
            cwd=cwd,
            env={**os.environ, "LC_ALL": "C"},
            capture_output=True,
            text=True,
            errors="replace",
            check=False,
            timeout=COMPILE_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(
            command, 1, "", f"error: {Path(command[0]).name} ran past {COMPILE_TIMEOUT:g} s"
        )


def _compile(
    command: Sequence[str], work: Path, name: str, shown: str, generated: Iterable[str] = (), what: str = "compile"
) -> None:
    """Run one step of the build in ``work``; FirmwareError with its errors if it fails."""
    done = _run(command, work)
    if done.returncode == 0:
        return
    log = done.stdout + done.stderr
    generated = (str(work / f"{name}.cpp"), f"{name}.cpp", *generated)
    errors = parse_errors(log, name, shown, generated)
    if not errors:
        last = log.strip().splitlines()[-1] if log.strip() else f"exit status {done.returncode}"
        errors = [f"{shown}: error: {what} failed: {last}"]
    raise FirmwareError(errors, log)


def _digest(parts: Iterable[object]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(repr(part).encode())
        digest.update(b"\0")
    return digest.hexdigest()[:24]


def _libraries(tools: Toolchain, headers: list[str]) -> list[Path]:
    """The ``src/`` folders of the Arduino libraries that provide ``headers`` (in their order; others are gcc's)."""
    found: list[Path] = []
    for header in headers:
        for source in sorted(tools.libraries_dir.glob(f"*/src/{header}")):
            if source.parent not in found:
                found.append(source.parent)
    return found


def _sources(folder: Path, *, every: bool = False) -> list[Path]:
    """The C, C++ and assembly files under ``folder`` (with ``every``, its headers too), sorted."""
    kinds = (".c", ".cpp", ".S", ".h") if every else (".c", ".cpp", ".S")
    return sorted(path for path in folder.rglob("*") if path.suffix in kinds and path.is_file())


def _files_digest(paths: list[Path]) -> str:
    """Files by name, size and time: cheap, and a new package changes them."""
    return _digest((path.name, path.stat().st_size, path.stat().st_mtime_ns) for path in paths)


def _archive(tools: Toolchain, folder: Path, what: str, sources: list[Path], flags: list[str], jobs: int) -> Path:
    """``sources`` (the core, or a library) compiled with ``flags`` into an archive; from the cache when it is there."""
    key = _digest((what, GENERATOR, tools.version, _files_digest(sources), flags, COMMON_FLAGS, C_FLAGS, CXX_FLAGS))
    final = folder / f"{what}-{key}" / f"{what}.a"
    if final.is_file():
        return final
    work = Path(tempfile.mkdtemp(prefix=f"{what}-", dir=folder))
    try:

        def compile_one(index: int, source: Path) -> tuple[Path, subprocess.CompletedProcess[str]]:
            obj = work / f"{index}-{source.name}.o"  # numbered: two folders of a library may hold one name
            compiler, kind = {
                ".c": (tools.gcc, C_FLAGS),
                ".cpp": (tools.gxx, CXX_FLAGS),
                ".S": (tools.gcc, S_FLAGS),
            }[source.suffix]
            return obj, _run([compiler, "-c", *COMMON_FLAGS, *kind, *flags, str(source), "-o", str(obj)])

        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
            compiled = list(pool.map(compile_one, range(len(sources)), sources))
        failed = "\n".join(done.stderr for _, done in compiled if done.returncode != 0)
        if failed:
            raise FirmwareError(parse_errors(failed, what) or [f"the Arduino {what} did not compile"], failed)
        archive = work / f"{what}.a"
        done = _run([tools.gcc_ar, "rcs", str(archive), *(str(obj) for obj, _ in compiled)])
        if done.returncode != 0:
            raise FirmwareError([f"the Arduino {what} did not archive: {done.stderr.strip()}"], done.stderr)
        for obj, _ in compiled:
            obj.unlink()
        _publish(work, final.parent)
        return final
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _publish(work: Path, final: Path) -> None:
    """Rename the finished folder ``work`` to ``final`` at once; if a build at the same time got there first, keep its."""
    try:
        work.rename(final)
    except OSError:
        shutil.rmtree(work, ignore_errors=True)


def _sizes(tools: Toolchain, elf: Path) -> tuple[int, int]:
    """(flash, RAM) in bytes from ``avr-size -A``: .text + .data, and .data + .bss + .noinit."""
    sections: dict[str, int] = {}
    for line in _run([tools.size, "-A", str(elf)]).stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
            sections[parts[0]] = int(parts[1])
    flash = sections.get(".text", 0) + sections.get(".data", 0)
    return flash, sections.get(".data", 0) + sections.get(".bss", 0) + sections.get(".noinit", 0)
