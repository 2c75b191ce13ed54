"""simavr in this process: our C helper (``simhelper.c``, shipped beside this module), compiled once and loaded with ctypes.

Why a helper of our own rather than ctypes straight onto ``libsimavr.so``, or cffi:

- simavr is driven through fields of its ``avr_t`` (``cycle``, ``state``, the ``run`` function,
  the data and flash arrays) whose offsets depend on how simavr was built: an ``io[]`` array
  of structs, IRQ and cycle-timer pools lie before ``cycle``. Mirrored in ctypes, one wrong
  size reads garbage; C compiled against the installed headers gets them right by construction.
- The core steps one instruction per call: one ctypes call per instruction runs far slower than
  real time, the same loop in C several times faster (bench/NOTES.md has the figures). So the
  run loop, and the IRQ callbacks (pin edges, UART bytes, timer registers), stay in C: they
  append to an event buffer that Python drains in bulk after each slice, and no Python callback
  ever runs on simavr's stack (the ctypes calls release the GIL for the whole run).
- cffi would be a dependency, and its API mode a compile step all the same; the helper needs
  only a C compiler and ``libsimavr-dev``, no Python headers.

It also keeps simavr 1.6 safe from untrusted firmware (simhelper.c's first comment says how).

The helper is compiled with the system's C compiler into ``simavr/`` of the user's cache
(:func:`~nodes.firmware.toolchain.cache_dir`), named by a hash of its source and simavr's
headers, at the first MCU made, and loaded once per process (:func:`helper`).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

from mesh.errors import FirmwareError

from .toolchain import SIMAVR_PACKAGES, cache_dir, find_simavr

__all__ = ["ABI", "SOURCE", "helper"]

#: The helper's source, shipped as package data.
SOURCE = Path(__file__).with_name("simhelper.c")
#: The helper's ABI version (SIM_ABI_VERSION in simhelper.c): a cached build of another is not loaded.
ABI = 1

_p, _u64, _u32, _int, _size = ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_int, ctypes.c_size_t
#: Each function of the helper: (result, arguments).
_SIGNATURES: dict[str, tuple[type | None, list[type]]] = {
    "sim_abi_version": (_int, []),
    "sim_new": (_p, [ctypes.c_char_p, _u32, ctypes.c_char_p, ctypes.c_char_p, _size]),
    "sim_free": (None, [_p]),
    "sim_run_until": (_int, [_p, _u64]),
    "sim_cycle": (_u64, [_p]),
    "sim_state": (_int, [_p]),
    "sim_pc": (_u32, [_p]),
    "sim_sp": (ctypes.c_uint16, [_p]),
    "sim_frequency": (_u32, [_p]),
    "sim_interrupts_enabled": (_int, [_p]),
    "sim_log": (ctypes.c_char_p, [_p]),
    "sim_clear_log": (None, [_p]),
    "sim_set_event_soft_limit": (None, [_p, _size]),
    "sim_drain": (_size, [_p, _p, _size]),
    "sim_pending_events": (_size, [_p]),
    "sim_uart_write": (_size, [_p, ctypes.c_char_p, _size]),
    "sim_uart_pending": (_size, [_p]),
    "sim_set_pin": (_int, [_p, _int, _int, _int]),
    "sim_port_state": (_u32, [_p, _int]),
    "sim_peek": (ctypes.c_uint8, [_p, ctypes.c_uint16]),
    "sim_watch_register": (_int, [_p, ctypes.c_uint16]),
    "sim_reset": (None, [_p]),
}


@functools.cache
def helper() -> ctypes.CDLL:
    """The helper, compiled if its build is not in the cache, loaded with its prototypes set (once per process).

    FirmwareError, one line, when simavr or a C compiler is missing, or the helper does not compile.
    """
    simavr = find_simavr()
    source = SOURCE.read_bytes()
    key = hashlib.sha256(source + simavr.version.encode()).hexdigest()[:16]
    folder = cache_dir() / "simavr"
    library = folder / f"simhelper-{key}.so"
    if not library.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        fd, partial = tempfile.mkstemp(prefix="simhelper-", suffix=".so", dir=folder)
        os.close(fd)
        command = [
            simavr.cc,
            *("-O2", "-g", "-std=gnu11", "-fPIC", "-shared", "-fvisibility=hidden", "-Wall"),
            f"-I{simavr.include}",
            str(SOURCE),
            "-o",
            partial,
            "-lsimavr",
            "-lpthread",
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False, env={**os.environ, "LC_ALL": "C"})
        if done.returncode != 0:
            os.unlink(partial)
            first = next((line for line in done.stderr.splitlines() if "error" in line), done.stderr.strip())
            raise FirmwareError([f"the simavr helper did not compile ({first}): apt-get install {SIMAVR_PACKAGES}"])
        os.replace(partial, library)  # at once: a process at the same time loads all of it or builds its own
    lib = ctypes.CDLL(str(library))  # CDLL: the GIL is released during every call
    for name, (result, arguments) in _SIGNATURES.items():
        function = getattr(lib, name)
        function.restype = result
        function.argtypes = arguments
    if lib.sim_abi_version() != ABI:
        raise FirmwareError([f"{library}: the helper's ABI is {lib.sim_abi_version()}, not {ABI}: delete the file"])
    return lib
