"""The sample platform: an offline, deterministic social network for demos and tests.

Nothing here touches the network. Every number is derived from a stable hash of
``(seed, company, handle, day|post|month)`` (SHA-256, never Python's salted ``hash()``), so
the same company, seed and dates give the same rows on every run and in every process.

Semantics of a fetch over ``window``: for every day boundary ``d`` (00:00 UTC) in
``(window.start, window.end]`` the account is observed *at* ``d``:

* one account snapshot (followers follow a smooth, company-specific growth curve with
  slow swings and a little daily noise, so they mostly grow and sometimes shrink);
* every post created in ``[d - window.lookback, d)`` with its counts at ``d`` (counts
  saturate as the post ages: ``floor(final * (1 - exp(-age / tau)))``, never decreasing);
* the thread replies under the company's original posts of that range that were created
  before ``d`` (third-party replies from a per-company pool of authors, the company's
  answers, follow-up questions, unanswered questions);
* the field-study probes sent in ``[d - max(lookback, 35 days), d)``, answered only if the
  answer came before ``d``. ``probe_id`` is the probes table's whole key, so a fetch emits
  each probe once, in its state at the last boundary that observes it: loading a 63-day
  backfill gives the same tables as loading 63 daily fetches one after the other.

A daily run with data interval ``[D, D+1)`` therefore observes once, at ``D+1``, and a
backfill of n days yields exactly the rows of n daily runs.

Account options (``companies.yaml``: ``accounts[].options``):

* ``profile``: ``craft`` or ``corporation``, the size profile of the generated account
  (small business: 200-8k followers, few posts, fast and reliable answers; corporation:
  10k-2M followers, many posts, slower answers to a lower share). Without it the profile
  is picked from the hash of the company id.
* ``fail``: a message; the account then fails with that message (a :class:`FetchError`),
  which is how tests exercise per-account error handling.

Two registry accounts with the same handle are the same sample account (the handle is its
``account_id``): their rows share the raw keys, and the fetch keeps the first account's
(:meth:`FetchResult.drop_duplicates`, with a warning in the log naming both).
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import math
import random
from dataclasses import dataclass, field
from typing import Any, ClassVar

from socialpulse.platforms.base import (
    AccountRef,
    FetchError,
    FetchResult,
    FetchWindow,
    PlatformContext,
)
from socialpulse.records import EARLIEST_TIMESTAMP

UTC = dt.UTC
DAY = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)
#: t = 0 of the follower and post-count curves
REFERENCE = dt.datetime(2025, 1, 1, tzinfo=UTC)
EARLIEST = EARLIEST_TIMESTAMP.replace(tzinfo=UTC)
#: probes stay in the fetch this long after they were sent (answers come within it)
PROBE_HORIZON = dt.timedelta(days=35)
#: a probe answer later than this never comes
PROBE_MAX_DELAY_HOURS = 21 * 24.0
PROBE_CHANNELS = (("public_post", 0.4), ("email", 0.3), ("direct_message", 0.2), ("web_form", 0.1))
PROFILES = ("craft", "corporation")
URL = "https://sample.socialpulse.invalid"


def _rng(*parts: object) -> random.Random:
    """A random generator seeded by a stable hash of ``parts`` (same in every process)."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def _unit(*parts: object) -> float:
    """One stable uniform number in [0, 1) for ``parts``."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _log_uniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def _poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    if mean > 30:  # normal approximation, never needed for the profiles below
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _day_start(t: dt.datetime) -> dt.datetime:
    return t.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def boundaries(window: FetchWindow) -> list[dt.datetime]:
    """The day boundaries (00:00 UTC) in ``(window.start, window.end]``."""
    d = _day_start(window.start)
    if d <= window.start:
        d += DAY
    out = []
    while d <= window.end:
        out.append(d)
        d += DAY
    return out


@dataclass(frozen=True)
class Profile:
    """The hidden character of one generated account (drawn once per seed, company, handle)."""

    segment: str
    followers_ref: float  # followers at REFERENCE
    growth: float  # mean log-growth per day
    swing: float  # amplitude of the slow swing of the daily growth rate
    swing_days: float
    swing_phase: float
    noise: float  # sd of the daily log-noise of followers
    following_ref: float
    following_per_day: float
    posts_ref: float  # posts_total at REFERENCE
    posts_per_day: float
    post_hours: tuple[int, int]
    share_reply: float
    share_repost: float
    engagement: float  # interactions per follower per original post (median)
    views: bool
    views_per_follower: float
    thread_mean: float  # third-party replies per original post
    fan_pool: int
    fan_skew: float  # > 1: a few fans write most replies
    answer_rate: float
    answer_hours: float  # median hours to the company's answer
    followup_rate: float
    probes_per_month: tuple[int, int]
    probe_answer_rate: float
    probe_hours: float
    probe_quality: float


def make_profile(seed: int, company_id: str, handle: str, segment: str) -> Profile:
    r = _rng(seed, company_id, handle, "profile")
    craft = segment == "craft"
    if craft:
        return Profile(
            segment=segment,
            followers_ref=_log_uniform(r, 250, 6000),
            growth=r.uniform(-0.0002, 0.0016),
            swing=r.uniform(0.0002, 0.0012),
            swing_days=r.uniform(20, 90),
            swing_phase=r.uniform(0, 2 * math.pi),
            noise=r.uniform(0.0005, 0.002),
            following_ref=r.uniform(50, 800),
            following_per_day=r.uniform(0.0, 0.3),
            posts_ref=r.uniform(80, 1500),
            posts_per_day=r.uniform(1, 5) / 7,
            post_hours=(6, 19),
            share_reply=r.uniform(0.03, 0.12),
            share_repost=r.uniform(0.02, 0.10),
            engagement=_log_uniform(r, 0.015, 0.09),
            views=r.random() < 0.6,
            views_per_follower=r.uniform(0.4, 2.5),
            thread_mean=r.uniform(0.8, 4.0),
            fan_pool=r.randint(12, 60),
            fan_skew=r.uniform(1.5, 3.0),
            answer_rate=r.uniform(0.7, 0.98),
            answer_hours=_log_uniform(r, 0.7, 10),
            followup_rate=r.uniform(0.1, 0.35),
            probes_per_month=(2, 4),
            probe_answer_rate=r.uniform(0.6, 0.97),
            probe_hours=_log_uniform(r, 2, 30),
            probe_quality=r.uniform(3.3, 4.8),
        )
    return Profile(
        segment=segment,
        followers_ref=_log_uniform(r, 15_000, 1_500_000),
        growth=r.uniform(-0.0002, 0.0009),
        swing=r.uniform(0.0001, 0.0008),
        swing_days=r.uniform(20, 120),
        swing_phase=r.uniform(0, 2 * math.pi),
        noise=r.uniform(0.0001, 0.0006),
        following_ref=r.uniform(20, 600),
        following_per_day=r.uniform(0.0, 0.2),
        posts_ref=r.uniform(2000, 25_000),
        posts_per_day=r.uniform(5, 18) / 7,
        post_hours=(6, 21),
        share_reply=r.uniform(0.05, 0.2),
        share_repost=r.uniform(0.03, 0.15),
        engagement=_log_uniform(r, 0.0012, 0.012),
        views=r.random() < 0.75,
        views_per_follower=r.uniform(0.1, 0.8),
        thread_mean=r.uniform(2.5, 9.0),
        fan_pool=r.randint(150, 1500),
        fan_skew=r.uniform(1.0, 2.0),
        answer_rate=r.uniform(0.25, 0.8),
        answer_hours=_log_uniform(r, 3, 60),
        followup_rate=r.uniform(0.05, 0.25),
        probes_per_month=(2, 4),
        probe_answer_rate=r.uniform(0.3, 0.85),
        probe_hours=_log_uniform(r, 10, 120),
        probe_quality=r.uniform(2.2, 4.0),
    )


@dataclass
class _Post:
    post_id: str
    created_at: dt.datetime
    kind: str
    likes: float  # final (saturated) counts
    reposts: float
    quotes: float
    replies: float  # only for non-originals; originals count their thread
    views: float | None
    tau_hours: float
    #: thread reply rows without observed_at, sorted by created_at
    thread: list[dict[str, Any]] = field(default_factory=list)
    thread_times: list[dt.datetime] = field(default_factory=list)


class _Account:
    """Generates one account's rows; every value is a pure function of (seed, ids, time)."""

    def __init__(self, seed: int, ref: AccountRef) -> None:
        self.seed = seed
        self.company_id = ref.company_id
        self.handle = ref.handle
        self.account_id = ref.handle
        segment = ref.options.get("profile")
        if segment is None:
            segment = PROFILES[int(_unit(seed, ref.company_id, "segment") * 2)]
        if segment not in PROFILES:
            raise ValueError(f"option 'profile' must be one of {list(PROFILES)}, got {segment!r}")
        self.p = make_profile(seed, ref.company_id, ref.handle, segment)
        self.key = (seed, ref.company_id, ref.handle)

    # --- account state ------------------------------------------------------------------

    def followers_at(self, t: dt.datetime) -> int:
        """Followers at time t: smooth growth with slow swings, plus noise per day."""
        p = self.p
        days = (t - REFERENCE).total_seconds() / 86400
        w = 2 * math.pi / p.swing_days
        # log F = log F0 + integral of (growth + swing * sin(w s + phase)) ds from 0 to days
        trend = p.growth * days - p.swing / w * (
            math.cos(w * days + p.swing_phase) - math.cos(p.swing_phase)
        )
        day = _day_start(t).date().isoformat()
        noise = p.noise * (2 * _unit(*self.key, "followers", day) - 1)
        return max(0, round(p.followers_ref * math.exp(trend + noise)))

    def snapshot(self, d: dt.datetime, lookback: dt.timedelta) -> dict[str, Any]:
        p = self.p
        days = (d - REFERENCE).total_seconds() / 86400
        return {
            "platform": "sample",
            "company_id": self.company_id,
            "account_id": self.account_id,
            "handle": self.handle,
            "observed_at": d,
            "followers": self.followers_at(d),
            "following": max(0, math.floor(p.following_ref + p.following_per_day * days)),
            "posts_total": max(0, math.floor(p.posts_ref + p.posts_per_day * days)),
            # the observation at d re-reads the posts of [d - lookback, d)
            "posts_since": d - lookback,
        }

    # --- posts and threads --------------------------------------------------------------

    def posts_between(self, lo: dt.datetime, hi: dt.datetime) -> list[_Post]:
        """All posts created in [lo, hi), oldest first, each generated once."""
        out: list[_Post] = []
        day = max(_day_start(lo), EARLIEST)
        while day < hi:
            for post in self._posts_of_day(day):
                if lo <= post.created_at < hi:
                    out.append(post)
            day += DAY
        return out

    def _posts_of_day(self, day: dt.datetime) -> list[_Post]:
        p = self.p
        date = day.date()
        r = _rng(*self.key, "posts", date.isoformat())
        rate = p.posts_per_day * (
            0.4 if date.weekday() == 6 else 1.1 if date.weekday() < 5 else 0.8
        )
        n = _poisson(r, rate)
        first, last = p.post_hours
        times = sorted(
            day + dt.timedelta(seconds=r.randrange(first * 3600, (last + 1) * 3600))
            for _ in range(n)
        )
        return [self._post(f"{self.handle}-p{date:%Y%m%d}{k:02d}", t) for k, t in enumerate(times)]

    def _post(self, post_id: str, created: dt.datetime) -> _Post:
        p = self.p
        r = _rng(*self.key, "post", post_id)
        u = r.random()
        kind = (
            "reply"
            if u < p.share_reply
            else "repost"
            if u < p.share_reply + p.share_repost
            else "original"
        )
        followers = self.followers_at(created)
        quality = r.lognormvariate(0, 0.6)  # how well this post lands
        factor = 1.0 if kind == "original" else 0.12 if kind == "reply" else 0.03
        interactions = followers * p.engagement * quality * factor
        views = None
        if p.views:
            views = (
                followers
                * p.views_per_follower
                * quality**0.5
                * (1.0 if kind == "original" else 0.3)
            )
        post = _Post(
            post_id=post_id,
            created_at=created,
            kind=kind,
            likes=interactions * r.uniform(0.72, 0.88),
            reposts=interactions * r.uniform(0.05, 0.15),
            quotes=interactions * r.uniform(0.0, 0.03),
            replies=0.0 if kind == "original" else interactions * r.uniform(0.02, 0.1),
            views=views,
            tau_hours=r.uniform(5, 20),
        )
        if kind == "original":
            self._thread(post, r, quality)
        return post

    def _fan(self, r: random.Random) -> str:
        p = self.p
        k = min(p.fan_pool - 1, int(p.fan_pool * r.random() ** p.fan_skew))
        return f"{self.handle}.fan{k:04d}"

    def _answer_delay(self, r: random.Random) -> dt.timedelta:
        hours = self.p.answer_hours * r.lognormvariate(0, 0.9)
        return dt.timedelta(seconds=max(60, round(hours * 3600)))

    def _thread(self, post: _Post, r: random.Random, quality: float) -> None:
        """Third-party replies, the company's answers, follow-ups and their answers."""
        p = self.p
        rows: list[dict[str, Any]] = []

        def add(reply_id: str, to: str, author: str, created: dt.datetime) -> None:
            rows.append(
                {
                    "platform": "sample",
                    "reply_id": reply_id,
                    "account_id": self.account_id,
                    "company_id": self.company_id,
                    "root_post_id": post.post_id,
                    "in_reply_to_id": to,
                    "author_id": author,
                    "author_is_company": author == self.account_id,
                    "created_at": created,
                }
            )

        n = min(40, _poisson(r, p.thread_mean * quality**0.5))
        mean_delay_h = post.tau_hours * 1.5
        fans: list[tuple[str, dt.datetime]] = []
        for i in range(n):
            rid = f"{post.post_id}-r{i:02d}"
            author = self._fan(r)
            created = post.created_at + dt.timedelta(
                seconds=max(60, round(r.expovariate(1 / mean_delay_h) * 3600))
            )
            if fans and r.random() < 0.12:
                # a fan answers another fan: a conversation, not a question to the company
                to, at = fans[r.randrange(len(fans))]
                created = max(created, at + dt.timedelta(minutes=r.randint(2, 240)))
                add(rid, to, author, created)
                fans.append((rid, created))
                continue
            add(rid, post.post_id, author, created)
            fans.append((rid, created))
            if r.random() >= p.answer_rate:
                continue  # never answered
            answer_id, answered = f"{rid}a", created + self._answer_delay(r)
            add(answer_id, rid, self.account_id, answered)
            if r.random() < p.followup_rate:
                fid = f"{rid}f"
                asked = answered + dt.timedelta(seconds=max(60, round(r.expovariate(1 / 4) * 3600)))
                add(fid, answer_id, author, asked)
                if r.random() < p.answer_rate:
                    add(f"{fid}a", fid, self.account_id, asked + self._answer_delay(r))
        rows.sort(key=lambda row: (row["created_at"], row["reply_id"]))
        post.thread = rows
        post.thread_times = [row["created_at"] for row in rows]

    def post_row(self, post: _Post, d: dt.datetime) -> dict[str, Any]:
        age_h = (d - post.created_at).total_seconds() / 3600
        s = 1 - math.exp(-age_h / post.tau_hours)
        if post.kind == "original":
            replies = bisect.bisect_left(post.thread_times, d)
        else:
            replies = math.floor(post.replies * s)
        return {
            "platform": "sample",
            "post_id": post.post_id,
            "account_id": self.account_id,
            "company_id": self.company_id,
            "created_at": post.created_at,
            "kind": post.kind,
            "likes": math.floor(post.likes * s),
            "replies": replies,
            "reposts": math.floor(post.reposts * s),
            "quotes": math.floor(post.quotes * s),
            "views": None if post.views is None else math.floor(post.views * s**0.7),
            "url": f"{URL}/{self.handle}/{post.post_id}",
            "observed_at": d,
        }

    # --- probes (the field study) -------------------------------------------------------

    def probes_of_month(self, year: int, month: int) -> list[dict[str, Any]]:
        """The inquiries sent to the company in one month, with their eventual answers."""
        p = self.p
        r = _rng(*self.key, "probes", f"{year:04d}-{month:02d}")
        start = dt.datetime(year, month, 1, tzinfo=UTC)
        days = ((start + dt.timedelta(days=32)).replace(day=1) - start).days
        out = []
        for k in range(r.randint(*p.probes_per_month)):
            probe_id = f"{self.company_id}-{year:04d}{month:02d}-q{k}"
            sent = start + dt.timedelta(
                days=r.randrange(days), seconds=r.randrange(7 * 3600, 18 * 3600)
            )
            channel = r.choices([c for c, _ in PROBE_CHANNELS], [w for _, w in PROBE_CHANNELS])[0]
            platform = "sample" if channel in ("public_post", "direct_message") else None
            answered = None
            if r.random() < p.probe_answer_rate:
                hours = p.probe_hours * r.lognormvariate(0, 1.0)
                if hours <= PROBE_MAX_DELAY_HOURS:
                    answered = sent + dt.timedelta(seconds=max(60, round(hours * 3600)))
            quality = max(1, min(5, round(r.gauss(p.probe_quality, 0.9))))
            ref = f"{URL}/{self.handle}/{probe_id}" if platform else f"mailto:{probe_id}"
            out.append(
                {
                    "probe_id": probe_id,
                    "company_id": self.company_id,
                    "platform": platform,
                    "channel": channel,
                    "sent_at": sent,
                    "question_ref": ref,
                    "_answered_at": answered,
                    "answer_ref": f"{ref}#answer",
                    "quality": quality,
                }
            )
        return out

    def probe_rows(self, ds: list[dt.datetime], horizon: dt.timedelta) -> list[dict[str, Any]]:
        """Each probe observed in the fetch, once, in its state at the last boundary seeing it."""
        lo, hi = ds[0] - horizon, ds[-1]
        year, month = lo.year, lo.month
        out = []
        while (year, month) <= (hi.year, hi.month):
            for probe in self.probes_of_month(year, month):
                sent = probe["sent_at"]
                # boundaries d observing it: sent < d <= sent + horizon; take the last one
                last = min(hi, _day_start(sent + horizon))
                if sent < EARLIEST or last < ds[0] or last <= sent:
                    continue
                answered = probe["_answered_at"]
                done = answered is not None and answered < last
                out.append(
                    {
                        "probe_id": probe["probe_id"],
                        "company_id": probe["company_id"],
                        "platform": probe["platform"],
                        "channel": probe["channel"],
                        "sent_at": sent,
                        "question_ref": probe["question_ref"],
                        "answered_at": answered if done else None,
                        "answer_ref": probe["answer_ref"] if done else None,
                        "quality": probe["quality"] if done else None,
                        "observed_at": last,
                    }
                )
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        out.sort(key=lambda row: (row["sent_at"], row["probe_id"]))
        return out

    # --- one fetch ----------------------------------------------------------------------

    def fetch(self, window: FetchWindow) -> dict[str, list[dict[str, Any]]]:
        rows: dict[str, list[dict[str, Any]]] = {
            "account_snapshots": [],
            "post_observations": [],
            "thread_replies": [],
            "probes": [],
        }
        ds = boundaries(window)
        if not ds:
            return rows
        lookback = window.lookback
        posts = self.posts_between(ds[0] - lookback, ds[-1])
        created = [post.created_at for post in posts]
        for d in ds:
            rows["account_snapshots"].append(self.snapshot(d, lookback))
            lo = bisect.bisect_left(created, d - lookback)
            hi = bisect.bisect_left(created, d)
            for post in posts[lo:hi]:
                rows["post_observations"].append(self.post_row(post, d))
                seen = bisect.bisect_left(post.thread_times, d)
                rows["thread_replies"].extend(
                    {**reply, "observed_at": d} for reply in post.thread[:seen]
                )
        rows["probes"] = self.probe_rows(ds, max(lookback, PROBE_HORIZON))
        return rows


class SamplePlatform:
    """Offline deterministic platform (see the module docstring)."""

    name: ClassVar[str] = "sample"

    def __init__(self, seed: int = 0, context: PlatformContext | None = None) -> None:
        del context  # offline: needs no connection and keeps no state
        self.seed = seed

    def fetch(self, accounts: list[AccountRef], window: FetchWindow) -> FetchResult:
        result = FetchResult()
        for ref in accounts:
            if ref.options.get("fail"):
                result.errors.append(
                    FetchError(self.name, ref.company_id, ref.handle, str(ref.options["fail"]))
                )
                continue
            try:
                rows = _Account(self.seed, ref).fetch(window)
            except Exception as exc:  # one bad account never stops the others
                result.errors.append(
                    FetchError(
                        self.name, ref.company_id, ref.handle, f"{type(exc).__name__}: {exc}"
                    )
                )
                continue
            result.extend(rows)
        # two companies registered with one handle would deliver the same keys: once
        result.drop_duplicates()
        return result
