"""Per-recipient preferences in notify's own table: channel order, quiet hours, opt-out, language.

Unset fields fall back to the defaults: channels by recipient kind (an office's configured order first),
quiet hours from NOTIFY_QUIET_HOURS (22:00-07:00), Chinese. Only the recipient themselves reads or sets them
(`check_owner`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sqlalchemy import Boolean, Column, MetaData, String, Table, select
from sqlalchemy.engine import Engine

from sandan_eventbus.auth.principal import Principal
from sandan_eventbus.errors import InvalidArgument, PermissionDenied
from sandan_notify.directory import upsert
from sandan_notify.domain import CHANNELS, KINDS, QuietHours, check_choice, check_id
from sandan_notify.templates import LANGUAGES

DEFAULT_CHANNELS: dict[str, tuple[str, ...]] = {
    "resident": ("wechat", "sms", "email", "console"),
    "member": ("wechat", "sms", "email", "console"),
    "unit": ("webhook", "email", "console"),
    "branch": ("webhook", "email", "sms", "console"),
    "town": ("webhook", "email", "sms", "console"),
    "county": ("webhook", "email", "sms", "console"),
}

# Whose preferences a token may read and set: per recipient kind, the role that speaks for it and the claim that
# names it (an office's id is as the office directory names it: a branch by its community, a town, the county).
OWNERS: dict[str, tuple[str, str]] = {
    "resident": ("resident", "resident_id"),
    "member": ("member", "member_id"),
    "unit": ("unit_admin", "unit_id"),
    "branch": ("branch_secretary", "community_id"),
    "town": ("town_office", "town_id"),
    "county": ("county_office", "county_id"),
}

metadata = MetaData()
preferences = Table(
    "notify_preferences", metadata,
    Column("recipient_kind", String(10), primary_key=True),
    Column("recipient_id", String(64), primary_key=True),
    Column("channels", String(100), nullable=False),  # comma-separated; empty: the default
    Column("quiet_start", String(5), nullable=False),
    Column("quiet_end", String(5), nullable=False),
    Column("opt_out_non_essential", Boolean, nullable=False),
    Column("language", String(5), nullable=False),
)


@dataclass(frozen=True)
class Preferences:
    recipient_kind: str
    recipient_id: str
    channels: tuple[str, ...] = ()
    quiet_start: str = ""
    quiet_end: str = ""
    opt_out_non_essential: bool = False
    language: str = "zh"
    is_default: bool = False

    @property
    def quiet(self) -> QuietHours | None:
        return QuietHours.parse(self.quiet_start, self.quiet_end)


def validated(p: Preferences) -> Preferences:
    check_choice("recipient_kind", p.recipient_kind, KINDS)
    check_id("recipient_id", p.recipient_id)
    for channel in p.channels:
        check_choice("channels", channel, CHANNELS)
    if len(set(p.channels)) != len(p.channels):
        raise InvalidArgument("channels", "must not repeat a channel")
    if bool(p.quiet_start.strip()) != bool(p.quiet_end.strip()):
        raise InvalidArgument("quiet_end", "give both quiet_start and quiet_end, or neither")
    QuietHours.parse(p.quiet_start, p.quiet_end)
    language = p.language or "zh"
    check_choice("language", language, LANGUAGES)
    return replace(p, language=language, quiet_start=p.quiet_start.strip(), quiet_end=p.quiet_end.strip(),
                   is_default=False)


def check_owner(who: Principal, kind: str, recipient_id: str) -> None:
    """Preferences are the recipient's own (access.toml: SetPreferences, GetPreferences): a resident or member their
    own record, a unit admin their unit, an office its office. Any of the caller's roles may be the one (a member who
    is also their community's secretary has two sets). Internal work (`SYSTEM`) passes."""
    if who.is_system:
        return
    role, claim = OWNERS[kind]
    bound = getattr(who, claim)
    if not (who.has(role) and bound and bound == recipient_id):
        raise PermissionDenied(f"{kind} preferences are their recipient's own: only the {role} bound to it "
                               f"({claim}) may read or set them")


class PreferenceStore:
    def __init__(self, engine: Engine, default_quiet: tuple[str, str] = ("22:00", "07:00")) -> None:
        self.engine = engine
        self.default_quiet = default_quiet
        QuietHours.parse(*default_quiet)
        metadata.create_all(engine)

    def get(self, kind: str, recipient_id: str) -> Preferences:
        with self.engine.connect() as conn:
            row = conn.execute(select(preferences).where(preferences.c.recipient_kind == kind,
                                                         preferences.c.recipient_id == recipient_id)).first()
        if row is None:
            return Preferences(kind, recipient_id, (), *self.default_quiet, False, "zh", is_default=True)
        return Preferences(kind, recipient_id, tuple(c for c in row.channels.split(",") if c), row.quiet_start,
                           row.quiet_end, bool(row.opt_out_non_essential), row.language)

    def set(self, prefs: Preferences) -> Preferences:
        p = validated(prefs)
        with self.engine.begin() as conn:
            upsert(self.engine, conn, preferences, {
                "recipient_kind": p.recipient_kind, "recipient_id": p.recipient_id, "channels": ",".join(p.channels),
                "quiet_start": p.quiet_start, "quiet_end": p.quiet_end,
                "opt_out_non_essential": p.opt_out_non_essential, "language": p.language,
            }, ["recipient_kind", "recipient_id"])
        return p


def channel_order(prefs: Preferences, office_channels: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The recipient's own order, else the office's configured order, else the default for the kind."""
    return prefs.channels or office_channels or DEFAULT_CHANNELS[prefs.recipient_kind]
