"""Finding and keeping at 100,000 jobs: search, filters, one person's favourites and a big
board, each against the unfiltered first page measured in turn with it."""

from django.urls import reverse

from bench.data import analyze
from bench.measure import interleaved_ms, queries_of
from bench.web import RUNS, getter
from jobs.models import VideoJob
from library.models import Board, BoardItem, Favourite

MAX_QUERIES = 6
FAVOURITES = 1_000
BOARD_SIZE = 5_000
RARE_WORD = "zeppelin"
RARE_ROW_OFFSET = 77_777  # Deep in the table: the search cannot stop at the newest rows.


def library(results, client, user):
    """Rows of the "library" group; the table holds 100,000 jobs by now."""
    pks = list(VideoJob.objects.order_by("-created_at", "-id").values_list("pk", flat=True))
    VideoJob.objects.filter(pk=pks[RARE_ROW_OFFSET]).update(prompt=f"A {RARE_WORD} over the harbour")
    starred = pks[:: len(pks) // FAVOURITES][:FAVOURITES]
    Favourite.objects.bulk_create([Favourite(user=user, job_id=pk) for pk in starred])
    board = Board.objects.create(name="Bench board", created_by=user)
    on_board = pks[:: len(pks) // BOARD_SIZE][:BOARD_SIZE]
    BoardItem.objects.bulk_create([BoardItem(board=board, job_id=pk, added_by=user) for pk in on_board])
    gateway_id = VideoJob.objects.filter(pk=pks[50_000]).values_list("upstream_id", flat=True).get()
    analyze()
    url = reverse("jobs:gallery")
    cases = {
        "search_rare": (f"search for a rare word ({RARE_WORD!r}, 1 job)", {"q": RARE_WORD}, 1),
        "search_common": ("search for a common word ('cinematic', 1 job in 3)", {"q": "cinematic"}, None),
        "search_gateway_id": (f"search for a gateway id ({gateway_id})", {"q": gateway_id}, 1),
        "filters": (
            "model + orientation + owner filters",
            {"model": "openAiSora2Pro", "aspect_ratio": "9:16", "who": "bob"},
            None,
        ),
        "favourites": (f"one person's favourites ({FAVOURITES:,})", {"fav": "1"}, None),
        "board": (f"a board of {BOARD_SIZE:,} videos", {"board": str(board.pk)}, None),
    }
    first = getter(client, url)
    for key, (label, params, expected_cards) in cases.items():
        filtered = getter(client, url, params)
        cards = filtered().content.count(b"data-card ")
        assert cards == (expected_cards or 24), f"{key}: {cards} cards"
        p50 = interleaved_ms({"first": first, "filtered": filtered}, RUNS)
        queries = queries_of(filtered)
        ratio = p50["filtered"] / p50["first"]
        results.add(
            "library", key, label,
            f"{p50['filtered']:.1f} vs {p50['first']:.1f} ms p50 unfiltered (x{ratio:.2f}); "
            f"{len(queries)} queries",
            f"<= 1.5x the first page, <= {MAX_QUERIES} queries", ratio <= 1.5 and len(queries) <= MAX_QUERIES,
            p50_ms=p50["filtered"], first_page_p50_ms=p50["first"], ratio=ratio, cards=cards, queries=queries,
        )  # fmt: skip
