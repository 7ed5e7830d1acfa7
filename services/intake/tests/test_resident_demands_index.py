"""ListResidentDemands' index over a store that outlives the app (SQLite, PostgreSQL): a store from before the index
lists its old demands after a start, and a start finds a post whose row was lost."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import delete

from sandan_intake.application import IntakeApplication
from sandan_intake.index import metadata as index_metadata
from sandan_intake.index import resident_demands
from sandan_intake.keys import Keyring
from sandan_intake.residents import ResidentStore
from services.intake.tests.test_application import listed, post, resident, ticking  # noqa: F401

pytestmark = pytest.mark.parametrize("store_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
                                     indirect=True)


@pytest.fixture
def store_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/intake.db"
    else:
        yield request.getfixturevalue("postgres_schema_url")


@pytest.mark.usefixtures("ticking")
def test_a_store_from_before_the_index_lists_old_demands(store_url: str) -> None:
    keyring = Keyring.generate()

    def open_app() -> IntakeApplication:
        return IntakeApplication(ResidentStore(store_url, keyring), store_url)

    app = open_app()
    wang, li = resident(app), resident(app)
    old = [str(post(app, wang, request=f"req-{i}").id) for i in range(3)]
    lis = str(post(app, li).id)
    with app.residents.engine.begin() as conn:  # the store as the release before the index left it
        index_metadata.drop_all(conn)
    app.close()

    app = open_app()
    try:
        assert listed(app, wang.resident_id) == old[::-1] and listed(app, li.resident_id) == [lis]
        new = str(post(app, wang, request="req-new").id)
        assert listed(app, wang.resident_id) == [new, *old[::-1]]
        with app.residents.engine.begin() as conn:  # a row lost between saving the post and writing it
            conn.execute(delete(resident_demands).where(resident_demands.c.demand_id == new))
        assert listed(app, wang.resident_id) == old[::-1]
    finally:
        app.close()
    app = open_app()  # the next start reads the log from where the last one stopped, and finds it
    try:
        assert listed(app, wang.resident_id) == [new, *old[::-1]]
        assert app.resident_demands.catch_up(app) == 0  # nothing left to read
    finally:
        app.close()
