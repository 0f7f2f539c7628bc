"""The upgrade test's second image is derived from the first (tools/devenv/images.py).

``derive_image`` rewrites an OCI archive instead of building again: what the node imports
must still be a valid archive (every blob named by its digest, every referenced blob there),
with the first image's layers byte for byte, a config that differs by the label alone, and a
new manifest digest and reference (so the chart really rolls to another image).
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tools.devenv.images import BuiltImage, derive_image, single_file_image

pytestmark = pytest.mark.unit


def _read(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        out: dict[str, bytes] = {}
        for member in tar.getmembers():
            fh = tar.extractfile(member)
            if fh is not None:
                out[member.name.removeprefix("./")] = fh.read()
        return out


def _blob(files: dict[str, bytes], digest: str) -> bytes:
    return files["blobs/sha256/" + digest.removeprefix("sha256:")]


def _image(files: dict[str, bytes]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(index entry, manifest, config) of a one-image archive."""
    index = json.loads(files["index.json"])
    assert len(index["manifests"]) == 1
    entry = index["manifests"][0]
    manifest = json.loads(_blob(files, entry["digest"]))
    config = json.loads(_blob(files, manifest["config"]["digest"]))
    return entry, manifest, config


@pytest.fixture
def first(tmp_path: Path) -> BuiltImage:
    binary = tmp_path / "operator"
    binary.write_bytes(b"\x7fELF not really a binary" * 100)
    archive = single_file_image(
        binary,
        tmp_path / "aigateway-operator-dev-0123456789abcdef.oci.tar",
        name="localhost/aigateway-operator:dev",
        entrypoint=["/operator"],
    )
    return BuiltImage(
        name="localhost/aigateway-operator:dev",
        archive=archive,
        archive_bytes=archive.stat().st_size,
        unpacked_bytes=1234,
        seconds=0.0,
        cached=True,
    )


def test_the_derived_image_has_the_same_layers_under_a_new_digest_and_reference(
    first: BuiltImage,
) -> None:
    second = derive_image(first, "dev-2", label="2")
    assert second.name == "localhost/aigateway-operator:dev-2"
    assert (second.repository, second.tag) == (first.repository, "dev-2")
    assert second.archive != first.archive
    assert not second.cached
    assert second.unpacked_bytes == first.unpacked_bytes

    old_files, new_files = _read(first.archive), _read(second.archive)
    old_entry, old_manifest, old_config = _image(old_files)
    new_entry, new_manifest, new_config = _image(new_files)
    assert new_entry["annotations"]["io.containerd.image.name"] == second.name
    assert new_entry["digest"] != old_entry["digest"]
    assert new_manifest["config"]["digest"] != old_manifest["config"]["digest"]
    assert new_manifest["layers"] == old_manifest["layers"]
    assert new_config["config"].pop("Labels") == {"dev.aigateway/build": "2"}
    assert new_config == old_config

    # A valid archive: every blob is named by its digest and sized as referenced.
    for path, data in new_files.items():
        if path.startswith("blobs/sha256/"):
            assert path.rsplit("/", 1)[1] == hashlib.sha256(data).hexdigest(), path
    for ref in (new_entry, new_manifest["config"], *new_manifest["layers"]):
        assert len(_blob(new_files, ref["digest"])) == ref["size"]
    # Nothing left over from the first image's manifest and config.
    assert "blobs/sha256/" + old_entry["digest"].removeprefix("sha256:") not in new_files


def test_deriving_again_reuses_the_archive(first: BuiltImage) -> None:
    second = derive_image(first, "dev-2", label="2")
    again = derive_image(first, "dev-2", label="2")
    assert again.cached
    assert again.archive == second.archive
    other = derive_image(first, "dev-3", label="3")
    assert other.archive != second.archive
    assert _image(_read(other.archive))[0]["digest"] != _image(_read(second.archive))[0]["digest"]
