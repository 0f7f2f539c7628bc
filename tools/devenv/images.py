"""Container images for the node, made here without a Docker daemon or a registry.

- :func:`single_file_image`: an OCI archive holding one static binary (the sandbox image).
- :func:`ensure_base_image`: a Debian bookworm root filesystem with Python 3.11 made by
  ``mmdebstrap`` from Debian's packages, cached as a tarball; it stands in for the public
  ``python:3.11-slim`` base the Dockerfile names by default.
- :func:`build_operator_image`: the project's ``Dockerfile``, built by ``buildah build``
  (Debian's buildah, chroot isolation, a vfs store in the cache so layers are reused) with that
  base passed as the Dockerfile's ``BASE`` build argument, exported as an OCI archive and
  cached by :func:`image_key`: the Dockerfile, the locks, the base and the operator's wheel
  (not the whole repository: a README or chart change reuses the image). The Dockerfile is
  the one source of the image.
- :func:`derive_image`: another image of the same layers (a label added to its config): a
  second, distinct image to upgrade to, without a second build.
- :func:`import_image`: ``ctr image import`` into a node's containerd (namespace ``k8s.io``).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tools.devenv.build import Progress, _build_lock, _progress_ticker, _stderr_progress, cache_dir

REPO = Path(__file__).resolve().parents[2]
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

#: The Debian suite and packages of the local base image: what python:3.11-slim-bookworm
#: provides to the Dockerfile (python, venv/ensurepip, CA certificates, useradd).
BASE_SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates", "passwd")
#: mmdebstrap options: no recommended packages, and none of the documentation and
#: translations python:*-slim also leaves out (the operator reads none of them).
BASE_OPTIONS = (
    "--aptopt=APT::Install-Recommends false",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
)
BASE_IMAGE_NAME = f"localhost/aigw-base:{BASE_SUITE}"
OPERATOR_IMAGE = "localhost/aigateway-operator"
IMAGES_LOCK = ".images.lock"


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def single_file_image(
    binary: Path,
    dest: Path,
    *,
    name: str,
    entrypoint: Sequence[str],
    user: str = "",
    arch: str = "amd64",
) -> Path:
    """An OCI image archive whose one layer holds ``binary`` at ``/<its name>``.

    Written byte for byte here (layer, config, manifest, index): no tool in between, and the
    same input always gives the same digests. ``name`` is recorded as the index annotation
    ``io.containerd.image.name``, the name ``ctr image import`` gives it.
    """
    layer_tar = io.BytesIO()
    with tarfile.open(fileobj=layer_tar, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, binary.name, binary.read_bytes(), mode=0o755)
    diff = layer_tar.getvalue()
    layer = gzip.compress(diff, mtime=0)
    config = json.dumps(
        {
            "architecture": arch,
            "os": "linux",
            "config": {"Entrypoint": list(entrypoint), "User": user, "WorkingDir": "/"},
            "rootfs": {"type": "layers", "diff_ids": [_sha256(diff)]},
        },
        sort_keys=True,
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": _sha256(config), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": _sha256(layer), "size": len(layer)}],
        },
        sort_keys=True,
    ).encode()
    index = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": _sha256(manifest),
                    "size": len(manifest),
                    "annotations": {
                        "io.containerd.image.name": name,
                        "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1],
                    },
                }
            ],
        },
        sort_keys=True,
    ).encode()
    tmp = dest.with_name(dest.name + ".partial")
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as out:
        _add_bytes(out, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        _add_bytes(out, "index.json", index)
        for blob in (layer, config, manifest):
            _add_bytes(out, f"blobs/sha256/{_sha256(blob).split(':')[1]}", blob)
    os.replace(tmp, dest)
    return dest


# --- the base image: Debian's packages, made here --------------------------------------------


def base_image_path() -> Path:
    spec = "\0".join((BASE_SUITE, *BASE_PACKAGES, *BASE_OPTIONS))
    key = hashlib.sha256(spec.encode()).hexdigest()[:12]
    return cache_dir() / "images" / f"debian-{BASE_SUITE}-python-{key}.tar"


def ensure_base_image(progress: Progress = _stderr_progress) -> Path:
    """A root filesystem tarball of Debian ``bookworm`` with Python 3.11, cached.

    ``mmdebstrap --variant=minbase`` (Debian's package; ``scripts/setup-system.sh`` installs
    it) downloads and unpacks the packages as apt would; no image registry is involved.
    """
    dest = base_image_path()
    if dest.exists():
        return dest
    root = cache_dir()
    with _build_lock(root, IMAGES_LOCK):
        if dest.exists():
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        progress(
            f"Making the base image root filesystem: Debian {BASE_SUITE} + "
            f"{', '.join(BASE_PACKAGES)} (mmdebstrap, first run only)"
        )
        partial = dest.with_name(dest.name + ".partial")
        log = dest.with_suffix(".log")
        with _progress_ticker("base root filesystem (mmdebstrap)", progress):
            _checked(
                [
                    "mmdebstrap",
                    "--variant=minbase",
                    "--format=tar",
                    f"--include={','.join(BASE_PACKAGES)}",
                    *BASE_OPTIONS,
                    BASE_SUITE,
                    str(partial),
                ],
                log,
            )
        os.replace(partial, dest)
    return dest


def _checked(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> str:
    """Run ``cmd``; its output is appended to ``log``; stdout is returned; fail with the tail."""
    proc = subprocess.run(
        cmd, capture_output=True, text=True, check=False, env=env, stdin=subprocess.DEVNULL
    )
    with log.open("a") as fh:
        fh.write(f"\n$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-3000:]
        raise RuntimeError(f"{cmd[0]} {cmd[1]} failed ({proc.returncode}); log {log}:\n{tail}")
    return proc.stdout


# --- the operator image: the Dockerfile, built by buildah ------------------------------------

#: The image's inputs, each in its cache key (:func:`image_key`). The build context admits
#: exactly these (.dockerignore), so a cached image is the image a fresh build would make:
#: - read by the build as they are, hashed byte for byte:
KEY_FILES = (
    "Dockerfile",
    ".dockerignore",
    "deploy/requirements.lock",
    "deploy/build-requirements.lock",
)
#: - built into the operator's wheel (all that reaches the image of them), hashed as the
#:   wheel's contents: README.md, docs, tests, the chart and pyproject.toml's tool settings
#:   are not in the wheel, so changing them reuses the image.
WHEEL_FILES = ("pyproject.toml", "LICENSE")
WHEEL_DIR = "src/aigateway_operator"
#: What the Dockerfile writes as the README the wheel's metadata names (pyproject.toml's
#: ``readme``): the repository's README.md stays out of the image and of its key.
WHEEL_README = "aigateway-operator: see the project's README.md.\n"
#: Directories buildah creates on the host whatever --root says; removed if we made them.
BUILDAH_HOST_DIRS = (
    Path("/var/lib/containers"),
    Path("/run/containers"),
    Path("/var/cache/containers"),
)
#: Operator image archives kept in the cache (the newest ones).
KEEP_OPERATOR_IMAGES = 4
#: buildah's layer cache is emptied when it grows beyond this.
MAX_BUILDAH_STORE = 8e9


@dataclass(frozen=True)
class BuiltImage:
    name: str
    """``localhost/aigateway-operator:<tag>``: how the chart's ``image`` values name it."""
    archive: Path
    """The OCI archive (``ctr image import``)."""
    archive_bytes: int
    unpacked_bytes: int
    """The size of its layers uncompressed: what it takes on a node."""
    seconds: float
    """How long the build took (0 when the archive came from the cache)."""
    cached: bool

    @property
    def repository(self) -> str:
        return self.name.rsplit(":", 1)[0]

    @property
    def tag(self) -> str:
        return self.name.rsplit(":", 1)[1]


def _wheel_sources(repo: Path) -> list[Path]:
    """The files under :data:`WHEEL_DIR` the build context admits (.dockerignore: no
    ``__pycache__``, no ``*.pyc``)."""
    return sorted(
        p
        for p in (repo / WHEEL_DIR).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )


def wheel_digest(repo: Path = REPO) -> str:
    """A hash of the operator's wheel as the Dockerfile builds it: from :data:`WHEEL_FILES`,
    :data:`WHEEL_DIR` and :data:`WHEEL_README`, by the declared backend (hatchling).

    The wheel is built in a scratch copy of those inputs (what the build stage's ``/src``
    holds) and hashed by its entries (name, executable bit, content), not by the zip's bytes:
    no timestamp or compression detail can change the key, and any change to what pip
    installs does.
    """
    with tempfile.TemporaryDirectory(prefix="aigw-wheel-") as tmp:
        src = Path(tmp) / "src"
        for path in [*(repo / f for f in WHEEL_FILES), *_wheel_sources(repo)]:
            dest = src / path.relative_to(repo)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)
        (src / "README.md").write_text(WHEEL_README)
        out = Path(tmp) / "wheel"
        proc = subprocess.run(
            [sys.executable, "-m", "hatchling", "build", "--target", "wheel", "-d", str(out)],
            cwd=src,
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        wheels = sorted(out.glob("*.whl"))
        if proc.returncode != 0 or len(wheels) != 1:
            raise RuntimeError(f"building the operator's wheel failed:\n{proc.stderr[-3000:]}")
        digest = hashlib.sha256(wheels[0].name.encode() + b"\0")
        with zipfile.ZipFile(wheels[0]) as whl:
            for info in sorted(whl.infolist(), key=lambda i: i.filename):
                executable = bool((info.external_attr >> 16) & 0o111)
                digest.update(f"{info.filename}\0{executable:d}\0".encode())
                digest.update(hashlib.sha256(whl.read(info)).digest())
    return digest.hexdigest()


def image_key(repo: Path = REPO, extra: str = "") -> str:
    """The operator image's cache key: everything that goes into the image and nothing else.

    :data:`KEY_FILES` byte for byte, the wheel (:func:`wheel_digest`), the base image's
    reference, and ``extra`` (the image's name and label, which its archive records).
    """
    digest = hashlib.sha256(extra.encode() + b"\0")
    for name in KEY_FILES:
        digest.update(name.encode() + b"\0" + (repo / name).read_bytes() + b"\0")
    digest.update(b"wheel\0" + wheel_digest(repo).encode() + b"\0")
    digest.update(b"base\0" + base_image_path().name.encode())
    return digest.hexdigest()[:16]


def build_operator_image(
    tag: str = "dev",
    *,
    label: str = "",
    repo: Path = REPO,
    progress: Progress = _stderr_progress,
) -> BuiltImage:
    """Build ``repo``'s Dockerfile into ``localhost/aigateway-operator:<tag>``, cached.

    The base (:func:`ensure_base_image`) is committed into buildah's store as
    ``localhost/aigw-base:bookworm-<its hash>`` and passed as the Dockerfile's ``BASE`` build
    argument;
    ``label`` (optional) is added as the image label ``dev.aigateway/build`` and makes a
    distinct image from the same sources (a second build to upgrade to).

    On these machines outbound HTTPS passes an intercepting proxy that the host trusts: the
    host's CA bundle and ``/etc/pip.conf`` are bind-mounted into the build's RUN steps (only
    when present, only for the build; never written into the image).
    """
    base = ensure_base_image(progress)
    name = f"{OPERATOR_IMAGE}:{tag}"
    key = image_key(repo, extra=f"{name}\0{label}")
    images = cache_dir() / "images"
    dest = images / f"aigateway-operator-{tag}-{key}.oci.tar"
    if not dest.exists():
        with _build_lock(cache_dir(), IMAGES_LOCK):
            if not dest.exists():
                start = time.monotonic()
                _buildah_build(repo, base, name, label, dest, progress)
                seconds = time.monotonic() - start
                _prune(images)
                return _describe(name, dest, seconds, cached=False)
    return _describe(name, dest, 0.0, cached=True)


def derive_image(image: BuiltImage, tag: str, *, label: str) -> BuiltImage:
    """Another image of the same content as ``image``, as ``<its repository>:<tag>``.

    Its config gains the label ``dev.aigateway/build=<label>``, so its config, manifest and
    image digests are new, and so is its reference; its layers are ``image``'s, byte for
    byte. That is what an upgrade needs (the chart rolls to another image) without a second
    ``buildah build`` of the same sources: the archive is rewritten here in a second or two,
    cached beside ``image``'s by its name and the derivation.
    """
    name = f"{image.repository}:{tag}"
    key = hashlib.sha256(f"{image.archive.name}\0{name}\0{label}".encode()).hexdigest()[:16]
    dest = image.archive.with_name(f"aigateway-operator-{tag}-{key}.oci.tar")
    if dest.exists():
        return _describe(name, dest, 0.0, cached=True)
    start = time.monotonic()
    # A name of its own per writer: two sessions deriving the same image both end with it.
    partial = dest.with_name(f"{dest.name}.{os.getpid()}.{time.monotonic_ns()}.partial")
    try:
        _write_derived(image.archive, partial, name, label)
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)
    sizes = dest.with_name(dest.name + ".json")
    sizes.write_text(json.dumps({"unpacked_bytes": image.unpacked_bytes}))
    return _describe(name, dest, time.monotonic() - start, cached=False)


def _write_derived(source: Path, dest: Path, name: str, label: str) -> None:
    """``source``'s OCI archive with the label added to its config, named ``name``."""
    with tarfile.open(source) as tar:
        members = {m.name.removeprefix("./"): m for m in tar.getmembers()}

        def read(path: str) -> bytes:
            member = tar.extractfile(members[path])
            if member is None:
                raise RuntimeError(f"{source}: {path} is not a file")
            return member.read()

        index = json.loads(read("index.json"))
        if len(index["manifests"]) != 1:
            raise RuntimeError(f"{source}: expected one manifest, found {len(index['manifests'])}")
        old_manifest = index["manifests"][0]
        manifest = json.loads(read(_blob(old_manifest["digest"])))
        old_config = manifest["config"]
        config = json.loads(read(_blob(old_config["digest"])))
        runtime = config.setdefault("config", {})
        runtime["Labels"] = {**(runtime.get("Labels") or {}), "dev.aigateway/build": label}
        config_bytes = json.dumps(config, sort_keys=True).encode()
        manifest["config"] = {
            **old_config,
            "digest": _sha256(config_bytes),
            "size": len(config_bytes),
        }
        new_manifest = json.dumps(manifest, sort_keys=True).encode()
        new_index = json.dumps(
            {
                **index,
                "manifests": [
                    {
                        **old_manifest,
                        "digest": _sha256(new_manifest),
                        "size": len(new_manifest),
                        "annotations": {
                            "io.containerd.image.name": name,
                            "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1],
                        },
                    }
                ],
            },
            sort_keys=True,
        ).encode()
        replaced = {"index.json", _blob(old_manifest["digest"]), _blob(old_config["digest"])}
        with tarfile.open(dest, mode="w", format=tarfile.PAX_FORMAT) as out:
            for member_name, member in members.items():
                if member_name in replaced:
                    continue
                out.addfile(member, tar.extractfile(member) if member.isfile() else None)
            _add_bytes(out, "index.json", new_index)
            for blob in (config_bytes, new_manifest):
                _add_bytes(out, _blob(_sha256(blob)), blob)


def _blob(digest: str) -> str:
    algorithm, hexdigest = digest.split(":", 1)
    return f"blobs/{algorithm}/{hexdigest}"


def _describe(name: str, archive: Path, seconds: float, cached: bool) -> BuiltImage:
    sizes = archive.with_name(archive.name + ".json")
    try:
        unpacked = int(json.loads(sizes.read_text())["unpacked_bytes"])
    except (OSError, ValueError, KeyError):
        unpacked = _unpacked_bytes(archive)
        sizes.write_text(json.dumps({"unpacked_bytes": unpacked}))
    return BuiltImage(
        name=name,
        archive=archive,
        archive_bytes=archive.stat().st_size,
        unpacked_bytes=unpacked,
        seconds=seconds,
        cached=cached,
    )


def _unpacked_bytes(archive: Path) -> int:
    """The size of the image's layers uncompressed (what it takes on a node's disk)."""
    with tarfile.open(archive) as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        manifest_digest = index["manifests"][0]["digest"].split(":")[1]
        manifest = json.load(tar.extractfile(f"blobs/sha256/{manifest_digest}"))  # type: ignore[arg-type]
        unpacked = 0
        for layer in manifest["layers"]:
            member = tar.extractfile(f"blobs/sha256/{layer['digest'].split(':')[1]}")
            if member is None:
                raise RuntimeError(f"{archive}: layer {layer['digest']} missing")
            if layer["mediaType"].endswith("gzip"):
                with gzip.open(member) as plain:
                    while chunk := plain.read(1 << 20):
                        unpacked += len(chunk)
            else:
                unpacked += len(member.read())
    return unpacked


def _prune(images: Path) -> None:
    archives = sorted(
        images.glob("aigateway-operator-*.oci.tar"), key=lambda p: p.stat().st_mtime, reverse=True
    )
    for old in archives[KEEP_OPERATOR_IMAGES:]:
        old.unlink(missing_ok=True)
        old.with_name(old.name + ".json").unlink(missing_ok=True)


@contextlib.contextmanager
def _buildah_storage() -> Iterator[list[str]]:
    """buildah's global flags for its store in the cache (vfs); kept between builds so that
    a rebuild reuses its layers, as ``docker build`` does. buildah also makes a few host
    directories whatever the flags say: those it made are removed afterwards."""
    existed = {p: p.exists() for p in BUILDAH_HOST_DIRS}
    store = cache_dir() / "buildah"
    try:
        yield [
            "buildah",
            "--root",
            str(store / "root"),
            "--runroot",
            str(store / "runroot"),
            "--storage-driver",
            "vfs",
        ]
    finally:
        for path, was_there in existed.items():
            if not was_there:
                shutil.rmtree(path, ignore_errors=True)


def _tree_bytes(root: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def _base_image_name(base: Path) -> str:
    """The base's name in buildah's store: one tag per root filesystem tarball."""
    return f"{BASE_IMAGE_NAME}-{base.stem.rsplit('-', 1)[-1]}"


def _buildah_build(
    repo: Path, base: Path, name: str, label: str, dest: Path, progress: Progress
) -> None:
    log = dest.with_name(dest.name.removesuffix(".oci.tar") + ".log")
    log.unlink(missing_ok=True)
    progress(f"Building {name} from {repo / 'Dockerfile'} with buildah (log {log})")
    base_name = _base_image_name(base)
    store = cache_dir() / "buildah"
    if store.exists() and _tree_bytes(store) > MAX_BUILDAH_STORE:
        # vfs copies a whole root filesystem per layer: start over rather than grow forever.
        progress(f"buildah's store is over {MAX_BUILDAH_STORE / 1e9:.0f} GB: starting it afresh")
        shutil.rmtree(store, ignore_errors=True)
    with _buildah_storage() as buildah:
        images = _checked([*buildah, "images", "--format", "{{.Name}}:{{.Tag}}"], log)
        if base_name not in images.split():
            with _progress_ticker(f"base image {base_name}", progress):
                ctr = _checked([*buildah, "from", "scratch"], log).strip().splitlines()[-1]
                _checked([*buildah, "add", ctr, str(base), "/"], log)
                _checked(
                    [
                        *buildah,
                        "config",
                        "--env",
                        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                        "--env",
                        "LANG=C.UTF-8",
                        "--cmd",
                        "python3",
                        ctr,
                    ],
                    log,
                )
                _checked([*buildah, "commit", "--rm", ctr, base_name], log)
        cmd = [
            *buildah,
            "build",
            "--pull=never",
            "--layers",
            "--isolation",
            "chroot",
            "--build-arg",
            f"BASE={base_name}",
            "--file",
            str(repo / "Dockerfile"),
            "--tag",
            name,
        ]
        if label:
            cmd += ["--label", f"dev.aigateway/build={label}"]
        for host_file in ("/etc/ssl/certs/ca-certificates.crt", "/etc/pip.conf"):
            if Path(host_file).is_file():
                cmd += ["--volume", f"{host_file}:{host_file}:ro"]
        with _progress_ticker(f"{name} (buildah build)", progress):
            _checked([*cmd, str(repo)], log)
        partial = dest.with_name(dest.name + ".partial")
        partial.unlink(missing_ok=True)
        _checked([*buildah, "push", name, f"oci-archive:{partial}:{name}"], log)
        os.replace(partial, dest)
