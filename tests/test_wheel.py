"""The built wheel, installed into a fresh virtual environment, reads an image.

An editable install finds every data file in the source tree, so it cannot tell whether the wheel
ships them. This test builds the wheel (hatchling, the backend pyproject.toml names), installs it
with ``--no-deps`` into a new venv and runs the installed ``specread`` from a temporary directory
with ``PYTHONPATH`` unset. The dependencies are not downloaded again: a ``.pth`` file in the fresh
venv puts the running interpreter's site-packages *after* its own, so ``specread`` itself can only
come from the wheel (asserted), while numpy, rapidocr and the rest come from this environment. A
plain directory line in a ``.pth`` file is not scanned for further ``.pth`` files, so the editable
install living there stays inactive.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import tomllib
import venv
from collections.abc import Sequence
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "specread"

pytestmark = pytest.mark.slow  # builds a wheel and runs the real OCR engine twice: tens of seconds


class Fresh:
    """A venv holding only the wheel; commands run from ``cwd`` without this checkout on the path."""

    def __init__(self, root: Path, cwd: Path) -> None:
        self.root = root
        self.cwd = cwd
        self.bin = root / ("Scripts" if os.name == "nt" else "bin")
        self.python = self.bin / "python"
        self.env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}

    def run(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(a) for a in args], cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, f"{args}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        return result

    def python_json(self, code: str) -> object:
        return json.loads(self.run(self.python, "-c", code).stdout)

    def specread(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        return self.run(self.bin / "specread", *args)


def _pip(*args: str | Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *map(str, args)], check=True)


def _build_wheel(out: Path) -> Path:
    # pip builds in an isolated environment with the hatchling that [build-system] asks for.
    _pip("wheel", "--no-deps", "--quiet", "--wheel-dir", out, ROOT)
    (wheel,) = out.glob("specread-*.whl")
    return wheel


def _link_dependencies(fresh: Fresh, parents: Sequence[str]) -> None:
    purelib = fresh.run(fresh.python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    (Path(purelib.stdout.strip()) / "zz_test_dependencies.pth").write_text("".join(f"{p}\n" for p in parents))


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Fresh:
    base = tmp_path_factory.mktemp("wheel")
    wheel = _build_wheel(base / "dist")
    env = Fresh(base / "fresh", cwd=base / "work")
    env.cwd.mkdir()
    venv.EnvBuilder(with_pip=False).create(env.root)
    _pip("--python", env.python, "install", "--no-deps", "--no-index", "--quiet", wheel)
    _link_dependencies(env, site.getsitepackages())
    return env


def _package_files(root: Path) -> set[str]:
    """Every file of the package, relative to it (bytecode caches left out)."""
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


def test_specread_imports_from_the_fresh_venv(fresh: Fresh) -> None:
    where = fresh.python_json("import json, specread; print(json.dumps(specread.__file__))")
    assert Path(str(where)).resolve().is_relative_to(fresh.root.resolve()), where
    assert not Path(str(where)).resolve().is_relative_to(ROOT), where


def test_wheel_holds_every_file_of_the_source_package(fresh: Fresh) -> None:
    # Model folder, settings, units table, INT8 models and static files included: whatever the tree has.
    installed_root = fresh.python_json(
        "import json, pathlib, specread; print(json.dumps(str(pathlib.Path(specread.__file__).parent)))"
    )
    source = _package_files(PACKAGE)
    assert {"data/settings.toml", "units/units.toml", "data/model/model.json"} <= source  # the walk found them
    missing = source - _package_files(Path(str(installed_root)))
    assert not missing, f"files of src/specread missing from the wheel: {sorted(missing)}"


def test_version_is_the_declared_one(fresh: Fresh) -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert fresh.specread("--version").stdout.strip() == f"specread {declared}"


def _label(path: Path, text: str) -> Path:
    image = Image.new("RGB", (560, 150), "white")
    ImageDraw.Draw(image).text((24, 44), text, fill="black", font=ImageFont.load_default(size=48))
    image.save(path)
    return path


@pytest.mark.parametrize("preset", ["fast", "int8"])  # int8 loads the packaged INT8 models
def test_installed_specread_reads_a_generated_image(fresh: Fresh, preset: str) -> None:
    image = _label(fresh.cwd / "label.png", "Net Wt 750 g")
    out = fresh.specread("read", image, "--entity", "item_weight", "--preset", preset, "--no-cache", "--json")
    prediction = json.loads(out.stdout)["predictions"]["item_weight"]
    assert prediction["prediction"] == "750.0 gram", prediction
    assert prediction["source"] != "prior"  # read off the image (model folder, units and settings loaded)


def test_installed_service_serves_its_static_files(fresh: Fresh) -> None:
    names = sorted(p.name for p in (PACKAGE / "service" / "static").iterdir() if p.is_file())
    code = (
        "import json, sys\n"
        "from fastapi.testclient import TestClient\n"
        "from specread.service.app import create_app\n"
        "from specread.settings import ServiceSettings\n"
        "client = TestClient(create_app(ServiceSettings(warmup=False)))\n"
        "paths = ['/'] + ['/static/' + n for n in json.loads(sys.argv[1])]\n"
        "print(json.dumps({p: [client.get(p).status_code, len(client.get(p).content)] for p in paths}))\n"
    )
    pytest.importorskip("fastapi")
    served = json.loads(fresh.run(fresh.python, "-c", code, json.dumps(names)).stdout)
    for name in names:
        assert served[f"/static/{name}"] == [200, (PACKAGE / "service" / "static" / name).stat().st_size], name
    assert served["/"][0] == 200
