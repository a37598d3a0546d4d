"""Vendor the CSS, JS and fonts of the Great Expectations Data Docs from the npm registry.

GX Core's page templates load Bootstrap, jQuery, Popper, Font Awesome, bootstrap-datepicker,
bootstrap-table, Vega and bootstrap-dark from six CDNs; offline or behind a firewall the
pages render unstyled, with an empty validation list. This script writes exactly the files
those templates reference (pinned versions, minified builds), the font files Font Awesome's
CSS references and each package's licence into ``gx_assets/``, and records in
``gx_assets/manifest.json`` each file's source and sha256 and which CDN URL it replaces.
:func:`socialpulse.validation.localise_docs` copies the folder into every Data Docs site
and rewrites the pages to it.

Usage (from the project root, with the venv)::

    python -m socialpulse.vendor_gx_assets          # download from npm, verify, rewrite the folder
    python -m socialpulse.vendor_gx_assets --check  # offline: the folder against its manifest

Downloading checks every tarball against the registry's ``dist.integrity`` (sha512), the
scripts GX loads with an ``integrity`` attribute against it, and that the URL map covers
every CDN URL of the installed GX templates (so a GX upgrade that changes them fails here).
Two packages ship no licence file in their npm tarball (popper.js 1.12.9, vega 5.33.1): their
licence is the project's own file at the release tag, pinned by sha256; when GitHub cannot be
reached, the copy already in the folder is kept if it still has that sha256.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import posixpath
import re
import shutil
import sys
import tarfile
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ASSETS = Path(__file__).with_name("gx_assets")
MANIFEST = "manifest.json"
#: files of the folder that are not vendored assets
OWN_FILES = {"README.md", ".gitignore", MANIFEST}
REGISTRY = "https://registry.npmjs.org"
#: the hosts GX's templates load assets from; none of them may remain in a localised page
CDN_HOSTS = (
    "cdn.jsdelivr.net",
    "cdnjs.cloudflare.com",
    "code.jquery.com",
    "maxcdn.bootstrapcdn.com",
    "stackpath.bootstrapcdn.com",
    "unpkg.com",
)
TIMEOUT = 60


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    #: file in the package -> the CDN URLs of the GX templates it replaces
    files: dict[str, tuple[str, ...]]
    #: the licence file in the tarball, or (URL, sha256) of the project's licence file at the
    #: release tag when the tarball has none
    licence: str | tuple[str, str]

    @property
    def folder(self) -> str:
        return f"{self.name.rsplit('/', 1)[-1]}-{self.version}"


CDNJS = "https://cdnjs.cloudflare.com/ajax/libs"
UNPKG_TABLE = "https://unpkg.com/bootstrap-table"
FILTER_CONTROL = "dist/extensions/filter-control/bootstrap-table-filter-control"
GITHUB_RAW = "https://raw.githubusercontent.com"

#: what GX Core 1.24.1 loads. The major-version URLs of Vega (``vega@5`` ...) are pinned to the
#: newest release of that major (what jsDelivr answers with, its ``jsdelivr`` file). Where a
#: template asks for an unminified stylesheet, its minified build in the same package is used.
PACKAGES = (
    Package(
        "bootstrap",
        "4.3.1",
        {
            "dist/css/bootstrap.min.css": (
                "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css",
            ),
            "dist/js/bootstrap.min.js": (
                "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js",
            ),
        },
        "LICENSE",
    ),
    Package(
        "jquery",
        "3.7.1",
        {"dist/jquery.min.js": ("https://code.jquery.com/jquery-3.7.1.min.js",)},
        "LICENSE.txt",
    ),
    Package(
        "popper.js",
        "1.12.9",
        {"dist/umd/popper.min.js": (f"{CDNJS}/popper.js/1.12.9/umd/popper.min.js",)},
        (
            f"{GITHUB_RAW}/floating-ui/floating-ui/v1.12.9/LICENSE.md",
            "2961310ed05cd9373a08b8191c071425a7fede0ca5d807ca38fa5f5f61c5b834",
        ),
    ),
    Package(
        "@fortawesome/fontawesome-free",
        "6.6.0",
        {"css/all.min.css": (f"{CDNJS}/font-awesome/6.6.0/css/all.min.css",)},
        "LICENSE.txt",
    ),
    Package(
        "bootstrap-datepicker",
        "1.9.0",
        {
            "dist/css/bootstrap-datepicker.min.css": (
                f"{CDNJS}/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css",
            ),
            "dist/js/bootstrap-datepicker.min.js": (
                f"{CDNJS}/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js",
            ),
        },
        "LICENSE",
    ),
    Package(
        "bootstrap-table",
        "1.19.1",
        {
            "dist/bootstrap-table.min.css": (f"{UNPKG_TABLE}@1.19.1/dist/bootstrap-table.min.css",),
            "dist/bootstrap-table.min.js": (f"{UNPKG_TABLE}@1.19.1/dist/bootstrap-table.min.js",),
            f"{FILTER_CONTROL}.min.js": (f"{UNPKG_TABLE}@1.19.1/{FILTER_CONTROL}.min.js",),
        },
        "LICENSE",
    ),
    Package(  # the index page asks for the .min.css, the other pages for the .css
        "bootstrap-table",
        "1.19.0",
        {
            f"{FILTER_CONTROL}.min.css": (
                f"{UNPKG_TABLE}@1.19.0/{FILTER_CONTROL}.min.css",
                f"{UNPKG_TABLE}@1.19.0/{FILTER_CONTROL}.css",
            )
        },
        "LICENSE",
    ),
    Package(
        "vega",
        "5.33.1",
        {"build/vega.min.js": ("https://cdn.jsdelivr.net/npm/vega@5",)},
        (
            f"{GITHUB_RAW}/vega/vega/v5.33.1/LICENSE",
            "63727832aaf62004a2b249c933e327f3c90caf49e41a72f4bf436edf632cbda8",
        ),
    ),
    Package(
        "vega-lite",
        "5.23.0",
        {"build/vega-lite.min.js": ("https://cdn.jsdelivr.net/npm/vega-lite@5",)},
        "LICENSE",
    ),
    Package(
        "vega-embed",
        "6.29.0",
        {"build/vega-embed.min.js": ("https://cdn.jsdelivr.net/npm/vega-embed@6",)},
        "LICENSE",
    ),
    Package(
        "@forevolve/bootstrap-dark",
        "1.1.0",
        {
            "dist/css/bootstrap-prefers-dark.min.css": (
                "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css",
            )
        },
        "LICENSE",
    ),
)

_CSS_URL = re.compile(r"""url\(\s*['"]?([^'")]+)['"]?\s*\)""")
_TEMPLATE_URL = re.compile(r"""https?://[^"'\s)>]+""")
_SRI_TAG = re.compile(r"""<script[^>]*\ssrc="([^"]+)"[^>]*\sintegrity="([^"]+)"[^>]*>""")


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=TIMEOUT) as resp:
        return resp.read()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def css_references(css: str) -> list[str]:
    """The relative URLs a stylesheet loads (``url(...)`` that are no data: or absolute URL)."""
    refs = []
    for ref in _CSS_URL.findall(css):
        ref = ref.strip()
        if ref.startswith(("data:", "#")) or "://" in ref or ref.startswith("/"):
            continue
        refs.append(re.split(r"[?#]", ref, maxsplit=1)[0])
    return sorted(set(refs))


def _templates() -> Path:
    spec = importlib.util.find_spec("great_expectations")
    assert spec is not None and spec.submodule_search_locations, "great_expectations not found"
    return Path(next(iter(spec.submodule_search_locations))) / "render" / "view" / "templates"


def template_cdn_urls(templates: Path | None = None) -> set[str]:
    """Every URL on one of :data:`CDN_HOSTS` in GX's page templates."""
    urls = set()
    for template in sorted((templates or _templates()).glob("*.j2")):
        for url in _TEMPLATE_URL.findall(template.read_text(encoding="utf-8")):
            if urllib.parse.urlsplit(url).hostname in CDN_HOSTS:
                urls.add(url)
    return urls


def _fetch_package(pkg: Package) -> tuple[dict, dict[str, bytes]]:
    """(the registry's metadata of ``pkg``, every file it contributes: folder path -> bytes)."""
    meta = json.loads(_get(f"{REGISTRY}/{pkg.name}/{pkg.version}"))
    tarball, integrity = meta["dist"]["tarball"], meta["dist"]["integrity"]
    data = _get(tarball)
    algo, _, expected = integrity.partition("-")
    got = base64.b64encode(hashlib.new(algo, data).digest()).decode()
    if got != expected:
        raise SystemExit(f"{tarball}: {algo} {got} is not the registry's {expected}")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:

        def read(path: str) -> bytes:
            member = tar.extractfile(f"package/{path}")
            if member is None:
                raise SystemExit(f"{tarball}: no file package/{path}")
            return member.read()

        wanted = list(pkg.files)
        if isinstance(pkg.licence, str):
            wanted.append(pkg.licence)
        files: dict[str, bytes] = {}
        while wanted:
            path = wanted.pop()
            if path in files:
                continue
            files[path] = read(path)
            if path.endswith(".css"):  # fonts and images the stylesheet loads
                base = posixpath.dirname(path)
                refs = css_references(files[path].decode("utf-8"))
                wanted += [posixpath.normpath(posixpath.join(base, ref)) for ref in refs]
    return meta, files


def _fetch_licence(pkg: Package, url: str, sha256: str) -> bytes:
    name = posixpath.basename(urllib.parse.urlsplit(url).path)
    try:
        data = _get(url)
    except OSError as exc:
        kept = ASSETS / pkg.folder / name
        if kept.is_file() and _sha256(kept.read_bytes()) == sha256:
            print(f"  {url} unreachable ({exc}); keeping {kept.relative_to(ASSETS)}")
            return kept.read_bytes()
        raise SystemExit(f"{url}: {exc}") from exc
    if _sha256(data) != sha256:
        raise SystemExit(f"{url}: sha256 {_sha256(data)} is not the pinned {sha256}")
    return data


def vendor() -> dict:
    """Download every package, verify it, rewrite ``gx_assets/``; returns the manifest."""
    out: dict[str, bytes] = {}
    files, packages, urls = [], [], {}
    for pkg in PACKAGES:
        print(f"{pkg.name}@{pkg.version}")
        meta, content = _fetch_package(pkg)
        tarball = meta["dist"]["tarball"]
        sources = {path: f"{tarball}#package/{path}" for path in content}
        if not isinstance(pkg.licence, str):
            url, sha256 = pkg.licence
            name = posixpath.basename(urllib.parse.urlsplit(url).path)
            content[name], sources[name] = _fetch_licence(pkg, url, sha256), url
        for path, data in sorted(content.items()):
            target = f"{pkg.folder}/{path}"
            out[target] = data
            files.append(
                {
                    "path": target,
                    "source": sources[path],
                    "sha256": _sha256(data),
                    "bytes": len(data),
                }
            )
        for path, cdn_urls in pkg.files.items():
            urls.update(dict.fromkeys(cdn_urls, f"{pkg.folder}/{path}"))
        licence = pkg.licence if isinstance(pkg.licence, str) else name
        packages.append(
            {
                "name": pkg.name,
                "version": pkg.version,
                "license": meta.get("license"),
                "licence_file": f"{pkg.folder}/{licence}",
                "tarball": tarball,
                "integrity": meta["dist"]["integrity"],
            }
        )
    _check_templates(urls, out)
    manifest = {
        "generated_by": "python -m socialpulse.vendor_gx_assets",
        "great_expectations": importlib.metadata.version("great_expectations"),
        "cdn_hosts": list(CDN_HOSTS),
        "urls": dict(sorted(urls.items())),
        "packages": packages,
        "files": files,
    }
    for old in ASSETS.iterdir() if ASSETS.is_dir() else []:
        if old.name not in OWN_FILES:
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    for path, data in out.items():
        (ASSETS / path).parent.mkdir(parents=True, exist_ok=True)
        (ASSETS / path).write_bytes(data)
    (ASSETS / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest


def _check_templates(urls: dict[str, str], files: dict[str, bytes]) -> None:
    """The URL map covers GX's templates exactly; the files match the templates' SRI hashes."""
    in_templates = template_cdn_urls()
    if missing := in_templates - urls.keys():
        raise SystemExit(f"GX templates load URLs nothing is vendored for: {sorted(missing)}")
    if stale := urls.keys() - in_templates:
        raise SystemExit(f"URLs no GX template loads any more: {sorted(stale)}")
    for template in sorted(_templates().glob("*.j2")):
        for url, sri in _SRI_TAG.findall(template.read_text(encoding="utf-8")):
            algo, _, expected = sri.partition("-")
            got = base64.b64encode(hashlib.new(algo, files[urls[url]]).digest()).decode()
            if got != expected:
                raise SystemExit(f"{urls[url]}: {algo} {got} is not {template.name}'s {expected}")
            print(f"  {urls[url]} matches the {sri[:16]}... of {template.name}")


def verify(folder: Path = ASSETS) -> list[str]:
    """What is wrong with ``folder`` against its manifest (an empty list when nothing is)."""
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    problems = []
    listed = {f["path"] for f in manifest["files"]}
    for entry in manifest["files"]:
        path = folder / entry["path"]
        if not path.is_file():
            problems.append(f"{entry['path']}: missing")
        elif _sha256(path.read_bytes()) != entry["sha256"]:
            problems.append(f"{entry['path']}: sha256 differs from the manifest")
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel not in listed and rel not in OWN_FILES:
            problems.append(f"{rel}: not in the manifest")
    for url, path in manifest["urls"].items():
        if path not in listed:
            problems.append(f"{url}: maps to {path}, which is not in the manifest")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="verify the folder against its manifest, offline"
    )
    args = parser.parse_args(argv)
    if not args.check:
        manifest = vendor()
        total = sum(f["bytes"] for f in manifest["files"])
        print(f"wrote {len(manifest['files'])} files, {total / 1e6:.2f} MB, to {ASSETS}")
    problems = verify()
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(f"{ASSETS / MANIFEST}: every file present, sha256 as recorded")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
