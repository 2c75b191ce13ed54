"""nodes.firmware.simavr: our C helper, compiled with the system's gcc into the user's cache, loaded once."""

from __future__ import annotations

import pytest

from mesh.errors import FirmwareError
from nodes.firmware import simavr

pytestmark = pytest.mark.e2e


def test_the_helper_is_compiled_into_the_cache_once_and_loaded(firmware_cache):
    library = simavr.helper()
    assert library.sim_abi_version() == simavr.ABI
    built = list((firmware_cache / "simavr").glob("simhelper-*.so"))
    assert len(built) == 1 and simavr.helper() is library  # once per process, once per user


def test_a_helper_that_does_not_compile_is_one_line_naming_the_packages(tmp_path, monkeypatch):
    broken = tmp_path / "simhelper.c"
    broken.write_text("#include <sim_avr.h>\nint sim_abi_version(void) { return nope; }\n")
    monkeypatch.setattr(simavr, "SOURCE", broken)
    monkeypatch.setenv("ARDUINO_MESH_CACHE", str(tmp_path / "cache"))
    simavr.helper.cache_clear()
    try:
        with pytest.raises(FirmwareError) as caught:
            simavr.helper()
    finally:
        simavr.helper.cache_clear()
    message = str(caught.value)
    assert "\n" not in message and message.startswith("the simavr helper did not compile (")
    assert "'nope' undeclared" in message and message.endswith("): apt-get install libsimavr-dev gcc")
