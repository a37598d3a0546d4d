"""A platform whose payloads break the record contract, to prove the GX gate in a real run."""

from __future__ import annotations

import datetime as dt

from socialpulse.platforms.base import AccountRef, FetchResult, FetchWindow


class NegativeLikesPlatform:
    name = "mastodon"

    def __init__(self, context: object = None) -> None:
        self.context = context

    def fetch(self, accounts: list[AccountRef], window: FetchWindow) -> FetchResult:
        result = FetchResult()
        end = window.end.replace(tzinfo=None)
        for a in accounts:
            result.add(
                "account_snapshots",
                dict(
                    platform="mastodon",
                    company_id=a.company_id,
                    account_id=f"m-{a.handle}",
                    handle=a.handle,
                    observed_at=end,
                    followers=100,
                    following=1,
                    posts_total=1,
                    posts_since=window.since.replace(tzinfo=None),
                ),
            )
            result.add(
                "post_observations",
                dict(
                    platform="mastodon",
                    post_id=f"m-{a.handle}-1",
                    account_id=f"m-{a.handle}",
                    company_id=a.company_id,
                    created_at=end - dt.timedelta(hours=3),
                    kind="original",
                    likes=-3,
                    replies=0,
                    reposts=0,
                    quotes=0,
                    views=None,
                    url=None,
                    observed_at=end,
                ),
            )
        return result
