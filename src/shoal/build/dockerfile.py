"""Dockerfile builds with buildah: the base images pulled on the host, the build in a sandbox.

A build's buildah storage (vfs) is a directory of the service's build cache, so base images
and layers stay for its next build. `pull` fetches the FROM images into it on the host (a
registry on the node's loopback works, as for the platform's own pulls); `command` is what
then runs inside the build's sandbox, with that storage at /cache and the source at
/workspace: `buildah bud --pull=never` with chroot isolation, RUN steps sharing the sandbox's
network namespace (outbound only) and without CAP_SYS_CHROOT (no way out of their root), then
the image saved as an OCI layout; `unpack` turns that into a root and its config on the host.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Mapping
from pathlib import Path

from shoal.build import manifest
from shoal.build.image import unpack_layout
from shoal.build.image_errors import ImageError
from shoal.build.reference import parse_reference

PULL_TIMEOUT_S = 900
STORE = "/cache/buildah"  # in the sandbox
LAYOUT_TAG = "app"


def _storage(root: str) -> list[str]:
    return ["--root", f"{root}/root", "--runroot", f"{root}/run", "--storage-driver", "vfs"]


def pull(store: Path, images: list[str]) -> list[str]:
    """Fetch the base images into the build's storage (`store`, the cache's buildah
    directory as the host sees it); returns buildah's output lines."""
    lines: list[str] = []
    for image in images:
        ref = parse_reference(image)
        tls = "false" if ref.is_loopback() else "true"
        argv = ["buildah", *_storage(str(store)), "pull", f"--tls-verify={tls}", "--quiet"]
        try:
            done = subprocess.run(
                [*argv, f"docker://{ref}"],
                capture_output=True,
                text=True,
                timeout=PULL_TIMEOUT_S,
                check=False,
            )
        except FileNotFoundError:
            raise ImageError("buildah is not installed: run scripts/install-system-deps") from None
        except subprocess.TimeoutExpired:
            raise ImageError(f"pulling {image} took over {PULL_TIMEOUT_S} s") from None
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise ImageError(f"cannot pull {image}: {last}")
        lines.append(f"Pulled {image}")
    return lines


def command(dockerfile: str, target: str | None, build_args: Mapping[str, str]) -> str:
    """The build, as the sandbox's shell runs it (in /workspace, the build context)."""
    storage = _storage(STORE)
    bud = [
        "buildah",
        *storage,
        "bud",
        "--isolation",
        "chroot",
        "--network",
        "host",
        "--pull=never",
        "--cap-drop",
        "CAP_SYS_CHROOT",
        "--layers",
        "-f",
        dockerfile,
        *(["--target", target] if target else []),
        *(arg for key, value in build_args.items() for arg in ("--build-arg", f"{key}={value}")),
        "-t",
        f"localhost/{LAYOUT_TAG}",
        ".",
    ]
    push = ["buildah", *storage, "push", "--quiet", f"localhost/{LAYOUT_TAG}"]
    push.append(f"oci:{STORE}/out:{LAYOUT_TAG}")
    clean = f"rm -rf {STORE}/out"
    return f"{clean} && {shlex.join(bud)} && {shlex.join(push)}"


def unpack(store: Path, target: Path) -> None:
    """The built image (in `store`, as the host sees it) as `target`/rootfs and
    `target`/config.json, as the image store keeps pulled images."""
    layout = store / "out"
    for path in (layout, *layout.rglob("*")):
        if path.is_symlink():  # a blob is a file: a link is the build's doing
            raise ImageError(f"the built image's layout holds a link: {path.relative_to(store)}")
    (target / "config.json").write_bytes(manifest.layout_config(layout, LAYOUT_TAG))
    unpack_layout(layout, LAYOUT_TAG, target / "rootfs", "built from the Dockerfile")
