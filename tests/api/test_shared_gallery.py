"""Several API replicas on one PostgreSQL gallery (each a whole app, in this process): they see each
other's writes within a second, a retried add with an Idempotency-Key is stored once, and a
database that stops and starts again costs writes a clear 503 and reads nothing."""

from __future__ import annotations

import threading
import time

import numpy as np
import torch

from model_api.app_state import AppState

from .conftest import API_KEY, encode

AUTH = {"X-API-Key": API_KEY}


def picture(seed: int) -> bytes:
    return encode(torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (3, 32, 32), dtype=np.uint8)))


def add(client, seed: int, caption: str, key: str | None = None):
    headers = {**AUTH, **({"Idempotency-Key": key} if key else {})}
    return client.post(
        "/v1/gallery", files={"file": ("a.png", picture(seed))}, data={"caption": caption}, headers=headers
    )


def add_until_acknowledged(client, seed: int, caption: str, key: str, timeout: float = 15):
    """What a careful client does: the same add with the same key again until it gets its 201."""
    deadline = time.monotonic() + timeout
    while (response := add(client, seed, caption, key)).status_code != 201:
        assert response.status_code == 503 and time.monotonic() < deadline, response.text
        time.sleep(0.2)
    return response


def found_by_caption(client, caption: str) -> set[str]:
    results = client.post("/v1/search/text", json={"query": caption, "top_k": 5}).json()["results"]
    return {result["id"] for result in results}


def seconds_until(condition, timeout: float = 5.0) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "not within the timeout"
        time.sleep(0.02)
    return time.monotonic() - started


def test_two_replicas_see_each_others_adds_and_deletes_within_a_second(serve, make_settings, postgres_url):
    first = serve(make_settings(database_url=postgres_url))
    second = serve(make_settings(database_url=postgres_url))
    item_id = add(first, 1, "a striped teapot").json()["id"]
    assert seconds_until(lambda: item_id in found_by_caption(second, "a striped teapot")) < 1
    assert second.get(f"/v1/gallery/{item_id}/image").content == picture(1)
    assert second.delete(f"/v1/gallery/{item_id}", headers=AUTH).status_code == 204
    assert seconds_until(lambda: first.get(f"/v1/gallery/{item_id}").status_code == 404) < 1
    assert item_id not in found_by_caption(first, "a striped teapot")
    # A replica started later loads the gallery as it is now.
    kept = add(second, 2, "kept").json()["id"]
    third = serve(make_settings(database_url=postgres_url))
    assert [item["id"] for item in third.get("/v1/gallery", params={"source": "user"}).json()["items"]] == [kept]


def test_a_retried_add_with_an_idempotency_key_is_stored_once(serve, make_settings, postgres_url):
    replicas = [serve(make_settings(database_url=postgres_url)) for _ in range(2)]
    created = add(replicas[0], 3, "once", key="retry-me")
    retried = add(replicas[1], 3, "once", key="retry-me")  # the retry reached the other replica
    assert created.status_code == retried.status_code == 201
    assert retried.json() == created.json() and retried.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in created.headers
    assert replicas[1].get("/v1/gallery", params={"source": "user"}).json()["total"] == 1
    reused = add(replicas[1], 4, "another picture", key="retry-me")
    assert reused.status_code == 422 and "retry-me" in reused.json()["detail"]


def test_a_database_outage_refuses_writes_keeps_reads_and_heals(serve, make_settings, own_postgres):
    url = own_postgres.create_database()
    writer, watcher = serve(make_settings(database_url=url)), serve(make_settings(database_url=url))
    acknowledged = [add(writer, 5, "before the outage").json()["id"]]
    seconds_until(lambda: acknowledged[0] in found_by_caption(watcher, "before the outage"))

    own_postgres.stop()
    refused = add(writer, 6, "during the outage", key="outage-add")
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
    assert "database is unreachable" in refused.json()["detail"]
    assert writer.delete(f"/v1/gallery/{acknowledged[0]}", headers=AUTH).status_code == 503
    # Reads come from memory: search, the item and the listing, on both replicas.
    for replica in (writer, watcher):
        assert acknowledged[0] in found_by_caption(replica, "before the outage")
        assert replica.get(f"/v1/gallery/{acknowledged[0]}").status_code == 200
        assert replica.get("/v1/gallery", params={"source": "user"}).json()["total"] == 1

    own_postgres.start(own_postgres.data_dir.parent / f"postgres-{own_postgres.port}-again.log")
    # The client retries its add with the same key until it is acknowledged: no restart, no duplicate.
    retried = add_until_acknowledged(writer, 6, "during the outage", key="outage-add")
    acknowledged.append(retried.json()["id"])
    # The other replica's change feed reconnects and catches up on what it missed.
    seconds_until(lambda: acknowledged[1] in found_by_caption(watcher, "during the outage"), timeout=10)
    later = serve(make_settings(database_url=url))
    listed = later.get("/v1/gallery", params={"source": "user"}).json()["items"]
    assert sorted(item["id"] for item in listed) == sorted(acknowledged)


def test_a_replica_started_before_its_database_waits_and_loads_once_it_is_up(make_settings, own_postgres, caplog):
    url = own_postgres.create_database()
    own_postgres.stop()
    state = AppState(make_settings(database_url=url))
    loading = threading.Thread(target=state.load)
    loading.start()
    try:
        seconds_until(lambda: "trying again" in caplog.text, timeout=60)
        assert state.not_ready_reason == "model loaded; loading the gallery" and state.error is None
        own_postgres.start(own_postgres.data_dir.parent / f"postgres-{own_postgres.port}-later.log")
        loading.join(60)
        assert state.gallery is not None and state.error is None
    finally:
        state.close()
        loading.join()
