"""The office directory file: format, the catch-all community, reload on change, and the read model."""

from __future__ import annotations

import os
from pathlib import Path

from sandan_notify.directory import Offices


def test_offices_resolve_and_reload(tmp_path: Path) -> None:
    path = tmp_path / "offices.toml"
    path.write_text('[county]\nid = "taihe"\nname = "县委组织部"\nemail = "c@example.org"\n'
                    '[towns.chengjiang]\nname = "澄江镇"\n'
                    '[communities."*"]\nname = "社区党委"\ntown = "chengjiang"\nchannels = ["email"]\n'
                    'email = "duty@example.org"\n', encoding="utf-8")
    offices = Offices(path)
    branch = offices.branch("c-77")
    assert branch is not None and (branch.office_id, branch.email, branch.channels) == (
        "c-77", "duty@example.org", ("email",))
    assert offices.town_of("c-77") == "chengjiang" and offices.county_id() == "taihe"
    assert offices.office("county", "taihe") is not None and offices.office("county", "other") is None
    path.write_text(path.read_text(encoding="utf-8") + '[communities.c-1]\nname = "城江"\nwebhook_url = "http://x/h"\n',
                    encoding="utf-8")
    os.utime(path, (1, 1))  # a different mtime even on coarse file systems
    c1 = offices.branch("c-1")
    assert c1 is not None and c1.webhook_url == "http://x/h" and c1.town == ""
    path.write_text("[county\n")  # a broken edit keeps the last good directory
    os.utime(path, (2, 2))
    assert offices.county_id() == "taihe"
    assert Offices(None).branch("c-1") is None
