"""Finding and keeping videos: search, filters, favourites and boards, as alice, bob and staff use them."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from jobs.models import VideoJob
from library.models import Board, BoardItem, Favourite
from tests.factories import make_job

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media")]
Status = VideoJob.Status


def signed_in(client, user):
    client.force_login(user)
    return client


def shown(client, query=""):
    """The job ids of the gallery's cards for ?query, in order."""
    response = client.get("/?" + query)
    assert response.status_code == 200
    return [
        int(pk) for pk in re.findall(r'<article class="card[^"]*" id="job-(\d+)"', response.content.decode())
    ]


# --- Search -----------------------------------------------------------------------


def test_search_finds_the_prompts_with_every_word(client, alice):
    boat = make_job(alice, prompt="A paper boat drifting on a rainy stream")
    make_job(alice, prompt="A paper lantern over a lake")
    client = signed_in(client, alice)
    assert shown(client, "q=paper+boat") == [boat.pk]
    assert shown(client, "q=BOATS") == [boat.pk]  # case and plural forms


def test_a_search_made_only_of_stop_words_finds_the_prompts_with_those_words(client, alice):
    sea = make_job(alice, prompt="A tale of the sea")
    mill = make_job(alice, prompt="The old mill")
    make_job(alice, prompt="Another day, other weather")  # "the" only inside longer words
    make_job(alice, prompt="A fox at dusk")
    client = signed_in(client, alice)
    assert shown(client, "q=the") == [mill.pk, sea.pk]
    assert shown(client, "q=THE") == [mill.pk, sea.pk]
    assert shown(client, "q=a+of+the") == [sea.pk]
    assert shown(client, "q=the+old") == [mill.pk]  # a real word beside a stop word: as before
    assert shown(client, "q=of+which") == []


def test_search_follows_a_prompt_that_was_edited_and_forgets_a_deleted_job(client, alice):
    job = make_job(alice, prompt="a red kite")
    gone = make_job(alice, prompt="a kite festival")
    VideoJob.objects.filter(pk=job.pk).update(prompt="a blue balloon")
    gone.delete()
    client = signed_in(client, alice)
    assert shown(client, "q=kite") == []
    assert shown(client, "q=balloon") == [job.pk]


def test_search_finds_a_job_by_its_number_and_by_its_gateway_id(client, alice):
    job = make_job(alice, prompt="a fox", upstream_id="task_8f2a-91")
    make_job(alice, prompt="a cat")
    client = signed_in(client, alice)
    assert shown(client, f"q={job.pk}") == [job.pk]
    assert shown(client, f"q=%23{job.pk}") == [job.pk]
    assert shown(client, "q=task_8f2a-91") == [job.pk]


@pytest.mark.parametrize(
    "query",
    ['"', "AND OR NOT", "fox*", "NEAR(a b)", "prompt:fox", "-fox", "^", "'; DROP TABLE x;--", "x" * 5000],
)
def test_search_syntax_in_the_query_is_taken_as_plain_words(client, alice, query):
    make_job(alice, prompt="a fox")
    response = signed_in(client, alice).get("/", {"q": query})
    assert response.status_code == 200


def test_search_combines_with_the_other_filters(client, alice, bob):
    wanted = make_job(alice, prompt="a fox in snow", model="openAiSora2Pro", aspect_ratio="9:16")
    make_job(alice, prompt="a fox in snow", model="openAiSora2Pro", aspect_ratio="16:9")
    make_job(bob, prompt="a fox in snow", model="openAiSora2Pro", aspect_ratio="9:16")
    make_job(alice, prompt="a hare in snow", model="openAiSora2Pro", aspect_ratio="9:16")
    client = signed_in(client, alice)
    assert shown(client, "q=fox&model=openAiSora2Pro&aspect_ratio=9:16&who=alice") == [wanted.pk]


# --- Filters ----------------------------------------------------------------------


def test_the_date_filters_keep_to_their_range(client, alice):
    now = timezone.now()
    today = make_job(alice, created_at=now)
    old = make_job(alice, created_at=now - timedelta(days=40))
    client = signed_in(client, alice)
    assert shown(client, "when=today") == [today.pk]
    assert shown(client, "when=month") == [today.pk]
    day = timezone.localdate(old.created_at).isoformat()
    assert shown(client, f"when=custom&start={day}&end={day}") == [old.pk]


def test_the_length_filter_and_the_status_tab_combine(client, alice):
    short = make_job(alice, duration=4, status=Status.SUCCEEDED)
    make_job(alice, duration=4, status=Status.FAILED)
    make_job(alice, duration=12, status=Status.SUCCEEDED)
    assert shown(signed_in(client, alice), "duration=4&status=succeeded") == [short.pk]


@pytest.mark.parametrize(
    "query",
    [
        "model=gpt9", "aspect_ratio=1:1", "duration=99999999999999999999999", "duration=abc",
        "who=" + "x" * 200,
        "when=yesterday", "when=custom&start=99999-01-01&end=2024-13-45", "when=custom&end=9999-12-31",
        "board=-1", "board=99999999999999999999999", "board=abc", "fav=false", "q=%00", "before=1_x",
    ],
)  # fmt: skip
def test_a_filter_that_does_not_parse_is_ignored(client, alice, query):
    job = make_job(alice)
    assert shown(signed_in(client, alice), query) == [job.pk]


def test_an_empty_filtered_result_says_so_and_offers_to_clear_the_filters(client, alice):
    make_job(alice, prompt="a fox")
    page = signed_in(client, alice).get("/?q=whale").content.decode()
    assert "No videos match these filters." in page
    assert 'id="clear-filters"' in page


def test_the_pages_and_the_live_poller_keep_the_filters(client, alice, monkeypatch):
    monkeypatch.setattr("jobs.views.PAGE_SIZE", 1)
    make_job(alice, prompt="a fox", status=Status.PROCESSING)
    make_job(alice, prompt="a fox", status=Status.PROCESSING)
    page = signed_in(client, alice).get("/?q=fox&model=openAiSora2Plus").content.decode()
    older = re.search(r'href="([^"]+)" rel="next"', page)[1]
    poller = re.search(r'id="live-cards"[^>]*hx-get="([^"]+)"', page)[1]
    assert "q=fox" in older and "model=openAiSora2Plus" in older
    assert "q=fox" in poller and "model=openAiSora2Plus" in poller


def test_the_live_tab_counts_count_within_the_filters(client, alice):
    job = make_job(alice, prompt="a fox", status=Status.PROCESSING)
    make_job(alice, prompt="a cat", status=Status.SUCCEEDED)
    client = signed_in(client, alice)
    poller = re.search(r'id="live-cards"[^>]*hx-get="([^"]+)"', client.get("/?q=fox").content.decode())[1]
    VideoJob.objects.filter(pk=job.pk).update(status=Status.SUCCEEDED)
    page = client.get(poller.replace("&amp;", "&")).content.decode()
    assert '<span class="tab__count" id="tab-count-succeeded" hx-swap-oob="true">1</span>' in page


def test_a_filtered_gallery_stays_within_six_queries(client, alice, django_assert_max_num_queries):
    board = Board.objects.create(name="Picks", created_by=alice)
    for number in range(30):
        job = make_job(alice, prompt=f"a fox number {number}")
        board.add(alice, [job.pk])
        Favourite.toggle(alice, job)
    client = signed_in(client, alice)
    with django_assert_max_num_queries(6):
        client.get(
            f"/?q=fox&model=openAiSora2Plus&aspect_ratio=16:9&who=alice&fav=1&board={board.pk}&when=week"
        )


# --- Favourites ------------------------------------------------------------------


def test_a_star_toggles_for_one_person_only(client, alice, bob):
    job = make_job(alice)
    other = make_job(alice)
    url = reverse("library:star", args=[job.pk])
    response = signed_in(client, bob).post(url, headers={"HX-Request": "true"})
    assert 'aria-pressed="true"' in response.content.decode()
    assert shown(client, "fav=1") == [job.pk]
    assert other.pk not in shown(client, "fav=1")
    assert shown(signed_in(client, alice), "fav=1") == []
    response = signed_in(client, bob).post(url, headers={"HX-Request": "true"})
    assert 'aria-pressed="false"' in response.content.decode()
    assert shown(client, "fav=1") == []


def test_the_cards_and_the_video_page_show_a_starred_video_as_pressed(client, alice):
    job = make_job(alice)
    Favourite.toggle(alice, job)
    client = signed_in(client, alice)
    assert 'aria-pressed="true"' in client.get("/").content.decode()
    assert 'aria-pressed="true"' in client.get(reverse("jobs:detail", args=[job.pk])).content.decode()


def test_deleting_a_job_takes_it_off_favourites_and_boards(alice):
    job = make_job(alice, status=Status.SUCCEEDED)
    Favourite.toggle(alice, job)
    Board.objects.create(name="Picks", created_by=alice).add(alice, [job.pk])
    job.delete()
    assert not Favourite.objects.exists() and not BoardItem.objects.exists()


# --- Boards -------------------------------------------------------------------------


def test_a_board_is_made_with_videos_added_in_bulk_and_shown_as_a_filtered_gallery(client, alice):
    first, second, left_out = make_job(alice), make_job(alice), make_job(alice)
    client = signed_in(client, alice)
    response = client.post(reverse("library:boards"), {"name": "Launch picks", "ids": [first.pk, second.pk]})
    board = Board.objects.get(name="Launch picks")
    assert response.status_code == 302
    assert sorted(shown(client, f"board={board.pk}")) == sorted([first.pk, second.pk])
    assert left_out.pk not in shown(client, f"board={board.pk}")


def test_the_bulk_bar_adds_to_a_chosen_board_and_a_video_can_be_on_several(client, alice):
    job = make_job(alice)
    one = Board.objects.create(name="One", created_by=alice)
    two = Board.objects.create(name="Two", created_by=alice)
    client = signed_in(client, alice)
    for board in (one, two, one):
        client.post(reverse("library:add_to_chosen"), {"board": board.pk, "ids": [job.pk], "next": "/?q=x"})
    assert shown(client, f"board={one.pk}") == shown(client, f"board={two.pk}") == [job.pk]
    assert BoardItem.objects.count() == 2


def test_add_goes_back_only_to_a_page_of_this_site(client, alice):
    board = Board.objects.create(name="One", created_by=alice)
    client = signed_in(client, alice)
    url = reverse("library:add", args=[board.pk])
    assert client.post(url, {"next": "/?board=1"})["Location"] == "/?board=1"
    assert client.post(url, {"next": "https://evil.example/"})["Location"] == f"/?board={board.pk}"
    assert client.post(url, {"next": "//evil.example/"})["Location"] == f"/?board={board.pk}"


def test_a_board_can_be_renamed_and_deleting_it_keeps_the_videos(client, alice):
    job = make_job(alice)
    board = Board.objects.create(name="Drafts", created_by=alice)
    board.add(alice, [job.pk])
    client = signed_in(client, alice)
    client.post(reverse("library:rename", args=[board.pk]), {"name": "Finals"})
    assert Board.objects.get().name == "Finals"
    client.post(reverse("library:delete", args=[board.pk]))
    assert not Board.objects.exists() and VideoJob.objects.filter(pk=job.pk).exists()


def test_two_boards_cannot_share_a_name(client, alice):
    Board.objects.create(name="Picks", created_by=alice)
    response = signed_in(client, alice).post(reverse("library:boards"), {"name": " picks "})
    assert response.status_code == 400 and Board.objects.count() == 1


def test_only_its_maker_or_staff_may_rename_or_delete_a_board(client, alice, bob, staff):
    board = Board.objects.create(name="Alice's", created_by=alice)
    assert signed_in(client, bob).post(reverse("library:delete", args=[board.pk])).status_code == 403
    assert signed_in(client, staff).post(reverse("library:delete", args=[board.pk])).status_code == 302


def test_the_boards_page_shows_the_first_poster_as_the_cover(client, alice):
    job = make_job(alice, status=Status.SUCCEEDED, poster="posters/p.jpg")
    Board.objects.create(name="Picks", created_by=alice).add(alice, [job.pk])
    page = signed_in(client, alice).get(reverse("library:boards")).content.decode()
    assert reverse("jobs:poster", args=[job.pk]) in page


# --- Scope "own": nobody sees another person's jobs or boards ---------------------------


@pytest.fixture
def own_scope(settings):
    settings.SORAWEB_GALLERY_SCOPE = "own"


@pytest.mark.usefixtures("own_scope")
def test_with_scope_own_search_and_filters_never_show_another_persons_jobs(client, alice, bob):
    theirs = make_job(alice, prompt="a secret fox", upstream_id="task_alice")
    Favourite.toggle(bob, theirs)  # Starred while the scope was "team".
    client = signed_in(client, bob)
    for query in ("q=fox", f"q={theirs.pk}", "q=task_alice", "who=alice", "fav=1", "q=fox&who=alice"):
        assert shown(client, query) == [], query
    assert "alice" not in client.get("/").content.decode()  # not even offered as "made by"


@pytest.mark.usefixtures("own_scope")
def test_with_scope_own_another_persons_board_is_out_of_sight(client, alice, bob):
    mine = make_job(bob)
    board = Board.objects.create(name="Alice's secret board", created_by=alice)
    board.add(alice, [make_job(alice).pk])
    BoardItem.objects.create(board=board, job=mine, added_by=alice)
    client = signed_in(client, bob)
    assert "Alice's secret board" not in client.get(reverse("library:boards")).content.decode()
    assert "Alice's secret board" not in client.get("/").content.decode()
    assert shown(client, f"board={board.pk}") == []
    assert client.post(reverse("library:add", args=[board.pk]), {"ids": [mine.pk]}).status_code == 404


@pytest.mark.usefixtures("own_scope")
def test_with_scope_own_a_person_cannot_add_or_star_another_persons_job(client, alice, bob):
    theirs = make_job(alice)
    board = Board.objects.create(name="Bob's", created_by=bob)
    client = signed_in(client, bob)
    client.post(reverse("library:add", args=[board.pk]), {"ids": [theirs.pk]})
    assert not BoardItem.objects.exists()
    assert client.post(reverse("library:star", args=[theirs.pk])).status_code == 404


def counts_shown(client, query=""):
    """{tab: the count it shows} on the gallery for ?query."""
    page = client.get("/?" + query).content.decode()
    return dict(re.findall(r'<span class="tab__count" id="tab-count-(\w+)">([^<]*)</span>', page))


def board_of(user, jobs, name="Picks"):
    board = Board.objects.create(name=name, created_by=user)
    BoardItem.objects.bulk_create([BoardItem(board=board, job=job, added_by=user) for job in jobs])
    return board


def test_the_tabs_of_a_board_count_its_jobs_by_status(client, alice, bob):
    statuses = [Status.PROCESSING, Status.PENDING, Status.SUCCEEDED, Status.SUCCEEDED, Status.SUCCEEDED]
    statuses += [Status.FAILED, Status.CANCELLED, Status.UNKNOWN]
    board = board_of(alice, [make_job(alice if n % 2 else bob, status=s) for n, s in enumerate(statuses)])
    for status in (Status.QUEUED, Status.SUCCEEDED, Status.FAILED):  # off the board
        board_of(alice, [make_job(alice, status=status)], name=f"Other {status}")
    client = signed_in(client, alice)
    expected = {"all": "8", "active": "2", "succeeded": "3", "failed": "3"}
    assert counts_shown(client, f"board={board.pk}") == expected
    assert counts_shown(client, f"board={board.pk}&status=failed") == expected
    assert counts_shown(client, f"board={board.pk}&mine=1") == {
        "all": "4", "active": "1", "succeeded": "1", "failed": "2",
    }  # fmt: skip


def test_the_tabs_of_a_board_count_within_the_search_and_filters(client, alice):
    board = board_of(
        alice,
        [
            make_job(alice, prompt="a red fox at dawn", status=Status.SUCCEEDED),
            make_job(alice, prompt="a red fox in snow", status=Status.FAILED),
            make_job(alice, prompt="a red fox in snow", status=Status.QUEUED, model="openAiSora2Pro"),
            make_job(alice, prompt="a koi pond", status=Status.SUCCEEDED),
        ],
    )
    make_job(alice, prompt="a red fox off the board", status=Status.SUCCEEDED)
    client = signed_in(client, alice)
    assert counts_shown(client, f"board={board.pk}&q=fox") == {
        "all": "3", "active": "1", "succeeded": "1", "failed": "1",
    }  # fmt: skip
    assert counts_shown(client, f"board={board.pk}&q=fox&model=openAiSora2Plus") == {
        "all": "2", "active": "0", "succeeded": "1", "failed": "1",
    }  # fmt: skip


# Ten times the cap is read in one pass; a longer board is counted tab by tab: both show the same.
@pytest.mark.parametrize("succeeded", [5, 30])
def test_a_board_longer_than_the_cap_shows_capped_counts(client, alice, monkeypatch, succeeded):
    monkeypatch.setattr("jobs.views.TAB_COUNT_LIMIT", 2)
    jobs = [make_job(alice, status=Status.SUCCEEDED) for _ in range(succeeded)]
    board = board_of(
        alice, [*jobs, make_job(alice, status=Status.FAILED), make_job(alice, status=Status.QUEUED)]
    )
    make_job(alice, status=Status.FAILED)  # off the board
    client = signed_in(client, alice)
    assert counts_shown(client, f"board={board.pk}") == {
        "all": "2+", "active": "1", "succeeded": "2+", "failed": "1",
    }  # fmt: skip


@pytest.mark.parametrize("size", [3, 12])
def test_a_board_counts_every_group_exactly_up_to_one_over_the_cap(alice, size):
    statuses = [Status.SUCCEEDED, Status.FAILED, Status.PROCESSING, Status.SUCCEEDED, Status.CANCELLED]
    jobs = [make_job(alice, status=statuses[n % len(statuses)]) for n in range(size)]
    board = board_of(alice, jobs)
    make_job(alice, status=Status.FAILED)  # off the board
    among = VideoJob.objects.board_job_ids(board.pk, alice)
    for cap in range(1, size + 2):
        exact = {
            name: sum(1 for job in jobs if not group or job.status in group)
            for name, group in VideoJob.TABS.items()
        }
        expected = {name: min(count, cap + 1) for name, count in exact.items()}
        assert VideoJob.objects.capped_counts(VideoJob.TABS, cap, among=among) == expected, cap
        assert VideoJob.objects.on_board(board.pk, alice).capped_counts(VideoJob.TABS, cap) == expected, cap


@pytest.mark.usefixtures("own_scope")
def test_with_scope_own_the_tabs_of_a_board_count_only_ones_own_jobs(client, alice, bob):
    board = board_of(
        alice,
        [
            make_job(alice, status=Status.SUCCEEDED),
            make_job(alice, status=Status.FAILED),
            make_job(bob, status=Status.SUCCEEDED),
            make_job(bob, status=Status.QUEUED),
        ],
    )
    assert counts_shown(signed_in(client, alice), f"board={board.pk}") == {
        "all": "2", "active": "0", "succeeded": "1", "failed": "1",
    }  # fmt: skip
    assert counts_shown(signed_in(client, bob), f"board={board.pk}") == {
        "all": "0", "active": "0", "succeeded": "0", "failed": "0",
    }  # fmt: skip


def test_the_tabs_of_ones_favourites_and_of_favourites_on_a_board_count_only_those(client, alice, bob):
    starred = [make_job(alice, status=s) for s in (Status.SUCCEEDED, Status.FAILED, Status.QUEUED)]
    for job in starred:
        Favourite.toggle(alice, job)
    Favourite.toggle(bob, make_job(alice, status=Status.SUCCEEDED))  # bob's, not alice's
    board = board_of(alice, [starred[0], starred[1], make_job(alice, status=Status.FAILED)])
    client = signed_in(client, alice)
    assert counts_shown(client, "fav=1") == {"all": "3", "active": "1", "succeeded": "1", "failed": "1"}
    assert counts_shown(client, f"fav=1&board={board.pk}") == {
        "all": "2", "active": "0", "succeeded": "1", "failed": "1",
    }  # fmt: skip


def test_the_live_tab_counts_of_a_board_follow_a_card_that_fails(client, alice):
    job = make_job(alice, status=Status.PROCESSING)
    board = board_of(alice, [job, make_job(alice, status=Status.SUCCEEDED)])
    make_job(alice, status=Status.PROCESSING)  # off the board
    client = signed_in(client, alice)
    page = client.get(f"/?board={board.pk}").content.decode()
    poller = re.search(r'id="live-cards"[^>]*hx-get="([^"]+)"', page)[1].replace("&amp;", "&")
    VideoJob.objects.filter(pk=job.pk).update(status=Status.FAILED)
    page = client.get(poller).content.decode()
    assert '<span class="tab__count" id="tab-count-active" hx-swap-oob="true">0</span>' in page
    assert '<span class="tab__count" id="tab-count-failed" hx-swap-oob="true">1</span>' in page


def test_the_video_page_lists_its_boards_and_takes_it_off_one(client, alice):
    job = make_job(alice)
    board = Board.objects.create(name="Picks", created_by=alice)
    board.add(alice, [job.pk])
    client = signed_in(client, alice)
    assert "Remove from Picks" in client.get(reverse("jobs:detail", args=[job.pk])).content.decode()
    client.post(reverse("library:remove", args=[board.pk]), {"ids": [job.pk], "next": f"/jobs/{job.pk}/"})
    assert not BoardItem.objects.exists() and VideoJob.objects.filter(pk=job.pk).exists()


def test_retention_spares_a_starred_video_and_one_on_a_board(alice):
    from jobs import retention

    starred, boarded, plain = (make_job(alice, status="succeeded") for _ in range(3))
    Favourite.objects.create(user=alice, job=starred)
    BoardItem.objects.create(board=Board.objects.create(name="Keepers", created_by=alice), job=boarded)

    spared = set(VideoJob.objects.filter(retention.exempt()).values_list("pk", flat=True))

    assert spared == {starred.pk, boarded.pk}
