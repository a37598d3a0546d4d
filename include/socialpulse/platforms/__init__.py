"""Platform connectors behind one interface (:class:`socialpulse.platforms.base.Platform`)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from socialpulse.platforms.base import PlatformContext

if TYPE_CHECKING:
    from socialpulse.platforms.base import Platform

#: platform name -> "module:Class"; imported only when a fetch task runs
IMPLEMENTATIONS = {
    "sample": "socialpulse.platforms.sample:SamplePlatform",
    "mastodon": "socialpulse.platforms.mastodon:MastodonPlatform",
    "bluesky": "socialpulse.platforms.bluesky:BlueskyPlatform",
    "rss": "socialpulse.platforms.rss:RssPlatform",
    "facebook": "socialpulse.platforms.facebook:FacebookPlatform",
    "instagram": "socialpulse.platforms.instagram:InstagramPlatform",
    "youtube": "socialpulse.platforms.youtube:YoutubePlatform",
}

#: platforms that read threads and so answer the field study's public-post probes
#: (Facebook with a Page token of the company's page; otherwise the answer entered by hand
#: in the registry is kept)
RESOLVES_PROBES = frozenset({"mastodon", "bluesky", "facebook", "youtube"})


class UnknownPlatform(ValueError):
    """A platform without a connector: no retry can mend it."""


def get_platform(name: str, context: PlatformContext | None = None) -> Platform:
    try:
        target = IMPLEMENTATIONS[name]
    except KeyError:
        raise UnknownPlatform(
            f"no connector for platform {name!r} yet; available: {sorted(IMPLEMENTATIONS)}"
        ) from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)(context=context or PlatformContext())
