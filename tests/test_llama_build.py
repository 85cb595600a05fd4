"""scripts/llama_build: the llama-cpp-python build scripts/setup installs
(native minus AMX), its cache key, the proof by a real decode in a child
process, and the fallback to portable flags when that child dies of a signal."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scripts import llama_build
from scripts.llama_build import Build, ProbeResult

ALL_X86 = frozenset(
    ["sse4_2", "avx", "avx2", "fma", "f16c", "bmi2", "avx512f", "avx512_bf16", "amx_int8"]
)


def defines(build: Build) -> dict[str, str]:
    return dict(arg[2:].split("=", 1) for arg in build.cmake_args if arg.startswith("-D"))


def test_the_native_build_on_x86_64_is_march_native_without_amx(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CFLAGS", raising=False)
    build = llama_build.native_build("x86_64", amx_flags_known=True)
    assert defines(build)["GGML_NATIVE"] == "ON"
    assert defines(build)["CMAKE_C_FLAGS"] == "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    assert defines(build)["CMAKE_CXX_FLAGS"] == defines(build)["CMAKE_C_FLAGS"]


def test_the_native_build_keeps_the_users_cflags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CFLAGS", "-O3 -g")
    build = llama_build.native_build("x86_64", amx_flags_known=True)
    assert defines(build)["CMAKE_C_FLAGS"] == "-O3 -g -mno-amx-tile -mno-amx-int8 -mno-amx-bf16"


def test_elsewhere_the_native_build_is_llama_cpps_own() -> None:
    assert llama_build.native_build("aarch64", amx_flags_known=False).cmake_args == (
        "-DGGML_NATIVE=ON",
    )
    # A compiler that does not know -mno-amx-* cannot emit AMX either.
    assert llama_build.native_build("x86_64", amx_flags_known=False).cmake_args == (
        "-DGGML_NATIVE=ON",
    )


def test_the_users_cmake_args_come_last_so_they_win() -> None:
    user = ("-DGGML_CUDA=ON", "-DGGML_NATIVE=OFF")
    build = llama_build.native_build("x86_64", True, user)
    assert build.cmake_args[-2:] == user
    assert llama_build.safe_build("x86_64", ALL_X86, user).cmake_args[-2:] == user


def test_the_safe_build_enables_what_the_cpu_lists_up_to_avx2_and_never_avx512_or_amx() -> None:
    found = defines(llama_build.safe_build("x86_64", ALL_X86))
    assert found["GGML_NATIVE"] == "OFF"
    assert all(found[opt] == "ON" for opt in ("GGML_AVX", "GGML_AVX2", "GGML_FMA", "GGML_F16C"))
    assert all(found[opt] == "OFF" for opt in llama_build.SAFE_X86_OFF)
    old_cpu = defines(llama_build.safe_build("x86_64", frozenset({"sse4_2", "avx"})))
    assert old_cpu["GGML_AVX"] == "ON" and old_cpu["GGML_AVX2"] == "OFF"
    assert old_cpu["GGML_FMA"] == "OFF"


def test_the_cache_key_follows_the_flags_and_the_version() -> None:
    native = llama_build.native_build("x86_64", True)
    cuda = llama_build.native_build("x86_64", True, ("-DGGML_CUDA=ON",))
    key = llama_build.cache_key(native, sys.executable)
    assert key == llama_build.cache_key(native, sys.executable)
    assert key != llama_build.cache_key(cuda, sys.executable)
    assert key != llama_build.cache_key(native, sys.executable, version="0.0.1")


def _preprocessor_macros(*flags: str) -> str:
    cc = os.environ.get("CC", "cc")
    done = subprocess.run(
        [cc, *flags, "-dM", "-E", "-x", "c", "-"],
        input="",
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


@pytest.mark.skipif(llama_build.machine() != "x86_64", reason="x86-64 compilers only")
def test_the_no_amx_flags_remove_amx_from_an_amx_cpus_march_whatever_their_order() -> None:
    """What -march=native resolves to on a Sapphire Rapids CPU keeps its
    AVX-512 extensions and loses only AMX: the mechanism, shown without one."""
    if not llama_build.compiler_accepts(llama_build.NO_AMX):
        pytest.skip("this compiler does not know AMX at all")
    assert "__AMX_INT8__" in _preprocessor_macros("-march=sapphirerapids")
    for flags in (
        ("-march=sapphirerapids", *llama_build.NO_AMX),
        (*llama_build.NO_AMX, "-march=sapphirerapids"),
    ):
        macros = _preprocessor_macros(*flags)
        assert "__AMX_INT8__" not in macros and "__AMX_TILE__" not in macros
        assert "__AVX512VNNI__" in macros and "__AVX512BF16__" in macros


# -- the source distribution, kept for the SmolLM3 stand-in's vocabulary -------------


def _fake_pip(path: Path, script: str) -> str:
    """A "python" whose `-m pip download ... -d DIR REQ` runs `script`."""
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)
    return str(path)


def test_setup_downloads_the_sdist_once_and_keeps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODEL_COMPOSE_WHEEL_CACHE", str(tmp_path / "cache"))
    # Writes its arguments into the "downloaded" file, in the -d folder.
    python = _fake_pip(
        tmp_path / "python",
        'args="$*"; while [ "$1" != -d ]; do shift; done; echo "$args" > "$2/x-1.tar.gz"',
    )
    path = llama_build.sdist(python)
    assert path == tmp_path / "cache" / "sdist" / f"llama_cpp_python-{llama_build.VERSION}.tar.gz"
    args = path.read_text()
    assert args.startswith("-m pip download --no-deps")
    assert "--no-binary llama-cpp-python" in args
    assert args.rstrip().endswith(f"llama-cpp-python=={llama_build.VERSION}")
    assert llama_build.sdist(_fake_pip(tmp_path / "python", "exit 1")) == path  # kept
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no scratch left


def test_a_failed_sdist_download_fails_setup_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MODEL_COMPOSE_WHEEL_CACHE", str(tmp_path / "cache"))
    python = _fake_pip(tmp_path / "python", "echo 'no route to the index' >&2; exit 1")
    message = f"downloading llama-cpp-python {llama_build.VERSION}'s source failed"
    with pytest.raises(llama_build.SetupError, match=message):
        llama_build.sdist(python)
    assert "no route to the index" in capsys.readouterr().err
    assert list((tmp_path / "cache" / "sdist").iterdir()) == []


# -- prove: the child decode and the fallback ---------------------------------------


@pytest.fixture
def venv_python(tmp_path: Path) -> str:
    """A python whose "virtualenv" is tmp_path (the record lands there)."""
    (tmp_path / "bin").mkdir()
    python = tmp_path / "bin" / "python"
    python.symlink_to(sys.executable)
    native = llama_build.native_build(llama_build.machine(), True)
    llama_build.write_record(
        str(python), key="k", build="native", cmake_args=native.cmake_args, proved=False
    )
    return str(python)


def _child(code: str) -> ProbeResult:
    """A real child process running `code`, as the probe runs one."""
    return llama_build.probe(sys.executable, code)


def test_a_probe_that_dies_of_sigill_rebuilds_with_the_safe_flags_and_proves_them(
    venv_python: str, capsys: pytest.CaptureFixture[str]
) -> None:
    outcomes = iter(
        [
            "import os, signal; os.kill(os.getpid(), signal.SIGILL)",
            "print('CPU : AVX2 = 1 | REPACK = 1 |')",
        ]
    )
    installed: list[Build] = []
    llama_build.prove(venv_python, lambda _: _child(next(outcomes)), installed.append)
    assert [build.name for build in installed] == ["safe"]
    record = llama_build.read_record(venv_python)
    assert record["build"] == "safe" and record["proved"] is True
    assert record["replaces"]  # the native key, so install() keeps the safe build
    out = capsys.readouterr().out
    assert "died of SIGILL" in out and "CMAKE_ARGS=-DGGML_NATIVE=ON" in out
    assert "rebuilding with the safe flags" in out
    assert "build uses AVX2, REPACK" in out


def test_a_safe_build_that_dies_too_fails_with_one_clear_line(venv_python: str) -> None:
    installed: list[Build] = []
    with pytest.raises(llama_build.SetupError, match=r"safe build .* also dies of SIGSEGV"):
        llama_build.prove(
            venv_python,
            lambda _: _child("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"),
            installed.append,
        )
    assert len(installed) == 1


def test_a_probe_that_fails_without_a_signal_is_not_a_build_problem(venv_python: str) -> None:
    with pytest.raises(llama_build.SetupError, match="test decode failed \\(exit 3\\)"):
        llama_build.prove(venv_python, lambda _: _child("raise SystemExit(3)"), lambda _: None)


def test_a_proved_build_is_not_probed_again(venv_python: str) -> None:
    record = llama_build.read_record(venv_python)
    llama_build.write_record(venv_python, **{**record, "proved": True})
    llama_build.prove(venv_python, lambda _: pytest.fail("probed again"), lambda _: None)


# -- the build in this virtualenv ----------------------------------------------------


def test_the_installed_build_was_proved_and_has_no_amx_kernels() -> None:
    """Fails on an AMX machine with llama.cpp's default (-march=native) build:
    there `llama_print_system_info` says AMX_INT8 = 1 and the decode crashes."""
    record_file = Path(sys.prefix) / llama_build.RECORD
    if not record_file.exists():
        pytest.skip("llama-cpp-python was not installed by scripts/setup here")
    record = json.loads(record_file.read_text())
    assert record["proved"] is True
    result = llama_build.probe(sys.executable)
    assert result.returncode == 0, result.output
    system_info = result.output.splitlines()[0]
    assert "AMX_INT8 = 1" not in system_info
    if "amx_int8" in llama_build.cpu_features():
        assert "AVX512" in system_info  # the rest of the CPU's ISA stays


@pytest.mark.skipif(
    llama_build.machine() != "x86_64" or shutil.which("objdump") is None,
    reason="disassembles an x86-64 library with objdump",
)
def test_the_installed_cpu_backend_holds_no_amx_instruction_but_keeps_the_rest() -> None:
    """The compiled code itself: no AMX tile instruction anywhere (today's
    default build on an AMX CPU has them), VNNI kept where the CPU has it."""
    import llama_cpp

    library = Path(llama_cpp.__file__).parent / "lib" / "libggml-cpu.so.0"
    if not library.exists():
        pytest.skip("no libggml-cpu.so.0 in this llama-cpp-python")
    listing = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", str(library)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = [line for line in listing.splitlines() if "\t" in line]
    mnemonics = {line.split("\t")[-1].split(" ")[0] for line in lines}
    assert not {m for m in mnemonics if m.startswith(("ldtilecfg", "tilezero", "tileload", "tdp"))}
    if "avx512_vnni" in llama_build.cpu_features():
        assert "vpdpbusd" in mnemonics


# -- llama.cpp's llama-server, built like the wheel (scripts/build-llama-server) ----


def test_llama_server_is_built_with_the_wheels_cmake_args_then_its_own(venv_python: str) -> None:
    from scripts.llama_build import llama_server

    build = llama_server.server_build(venv_python)
    wheel_args = llama_build.read_record(venv_python)["cmake_args"]
    assert build.cmake_args == (*wheel_args, *llama_server.SERVER_ARGS)
    options = defines(build)
    assert options["BUILD_SHARED_LIBS"] == "OFF" and options["LLAMA_BUILD_SERVER"] == "ON"
    assert options["LLAMA_USE_PREBUILT_UI"] == "OFF"  # no download: no internet
    source, build_dir = Path("/src"), Path("/build")
    configure, compile_ = llama_server.cmake_commands(source, build_dir, build, jobs=2)
    assert configure[:5] == ["cmake", "-S", "/src", "-B", "/build"]
    assert configure[-len(build.cmake_args) :] == list(build.cmake_args)
    assert compile_ == ["cmake", "--build", "/build", "--target", "llama-server", "--parallel", "2"]


def test_the_cached_llama_server_is_found_under_the_wheels_kind_of_key(
    venv_python: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scripts.llama_build import llama_server

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert llama_server.cached_binary(venv_python) is None
    build = llama_server.server_build(venv_python)
    folder = llama_server.cache_folder(build, venv_python)
    assert folder.parent == tmp_path / "cache" / "model-compose" / "llama-server"
    assert folder.name == llama_build.cache_key(build, venv_python)
    folder.mkdir(parents=True)
    (folder / "llama-server").write_text("#!/bin/sh\necho version: 1\n")
    assert llama_server.cached_binary(venv_python) is None  # not executable: not a build
    (folder / "llama-server").chmod(0o755)
    assert llama_server.cached_binary(venv_python) == folder / "llama-server"
    # Other wheel flags, another llama-server.
    llama_build.write_record(venv_python, key="k2", build="safe", cmake_args=["-DGGML_NATIVE=OFF"])
    assert llama_server.cached_binary(venv_python) is None


def test_llama_server_needs_the_record_of_the_wheels_build(tmp_path: Path) -> None:
    from scripts.llama_build import llama_server

    (tmp_path / "bin").mkdir()
    python = tmp_path / "bin" / "python"
    python.symlink_to(sys.executable)
    with pytest.raises(llama_build.SetupError, match="run scripts/setup first"):
        llama_server.server_build(str(python))
