"""Share links to a board: one link, the board's finished videos, nothing else of the studio.

alice made the board and owns most videos on it, bob is on the team, staff is an admin; the
visitor holding the link is signed out.
"""

import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from handover import views
from handover.models import ShareLink
from jobs.models import VideoJob
from library.models import Board, BoardItem
from tests.factories import image_bytes, make_job, tiny_mp4

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media")]
Status = VideoJob.Status


def ready(owner, prompt):
    job = make_job(owner, prompt=prompt, status=Status.SUCCEEDED, completed_at=timezone.now())
    job.video.save(f"job-{job.pk}.mp4", ContentFile(tiny_mp4()), save=False)
    job.poster.save(f"job-{job.pk}.jpg", ContentFile(image_bytes(128, 72, "JPEG")), save=False)
    job.save()
    return job


def board_of(user, *jobs, name="Launch picks"):
    board = Board.objects.create(name=name, created_by=user)
    for job in jobs:
        BoardItem.objects.create(board=board, job=job, added_by=user)
    return board


def share(client, user, board, days="7"):
    """The path of a new link to board, made by user through the boards page's form; signed out after."""
    client.force_login(user)
    response = client.post(reverse("handover:share_board", args=[board.pk]), {"days": days})
    assert response.status_code == 200
    client.logout()
    return urlsplit(response.context["url"]).path


def files_of(url, job):
    return [f"{url}v/{job.pk}/video.mp4", f"{url}v/{job.pk}/poster.jpg", f"{url}v/{job.pk}/download"]


@pytest.fixture
def picks(alice):
    """alice's board: two finished videos, one that failed, and one whose files retention took."""
    first, second = ready(alice, "a red kite over the dunes"), ready(alice, "a blue boat at anchor")
    failed = make_job(alice, prompt="a failed attempt", status=Status.FAILED)
    emptied = make_job(alice, prompt="a video retention took", status=Status.SUCCEEDED)
    return board_of(alice, first, second, failed, emptied), (first, second), (failed, emptied)


def test_a_board_link_serves_exactly_the_boards_finished_videos(client, alice, picks):
    board, (first, second), (failed, emptied) = picks
    elsewhere = ready(alice, "a green hill, not on the board")
    url = share(client, alice, board)

    page = client.get(url)
    html = page.content.decode()
    assert page.status_code == 200 and page["Referrer-Policy"] == "no-referrer"
    assert "<h1>Launch picks</h1>" in html
    assert set(re.findall(r"/v/(\d+)/video\.mp4", html)) == {str(first.pk), str(second.pk)}
    assert "a red kite over the dunes" in html and "a blue boat at anchor" in html
    for prompt in ("a green hill", "a failed attempt", "retention took"):
        assert prompt not in html
    for job in (first, second):
        video, poster, download = files_of(url, job)
        assert b"".join(client.get(video).streaming_content) == tiny_mp4()
        assert client.get(poster)["Content-Type"] == "image/jpeg"
        assert client.get(download)["Content-Disposition"].startswith("attachment")
    for job in (elsewhere, failed, emptied):
        for path in files_of(url, job):
            response = client.get(path)
            assert response.status_code == 404, path
            assert b"This link does not exist" in response.content


def test_a_board_video_answers_a_range_request(client, alice, picks):
    board, (first, _), _ = picks
    response = client.get(files_of(share(client, alice, board), first)[0], HTTP_RANGE="bytes=0-9")

    assert response.status_code == 206 and b"".join(response.streaming_content) == tiny_mp4()[:10]


def test_on_object_storage_a_board_video_is_a_redirect_like_a_single_video(client, settings, alice, picks):
    board, (first, _), _ = picks
    url = share(client, alice, board)
    settings.S3_BUCKET = "videos"

    assert client.get(files_of(url, first)[0]).status_code == 302


def test_a_video_taken_off_the_board_stops_being_served(client, alice, picks):
    board, (first, second), _ = picks
    url = share(client, alice, board)
    board.remove(alice, [first.pk])

    assert f"/v/{first.pk}/" not in client.get(url).content.decode()
    assert all(client.get(path).status_code == 404 for path in files_of(url, first))
    assert client.get(files_of(url, second)[0]).status_code == 200


def test_a_video_added_later_is_served_too(client, alice, picks):
    board, _, _ = picks
    url = share(client, alice, board)
    later = ready(alice, "added after the link")
    board.add(alice, [later.pk])

    assert "added after the link" in client.get(url).content.decode()
    assert client.get(files_of(url, later)[0]).status_code == 200


def test_with_scope_own_another_persons_video_on_the_board_is_not_served(client, settings, alice, bob, picks):
    board, (first, _), _ = picks
    bobs = ready(bob, "bob's private take")
    BoardItem.objects.create(board=board, job=bobs, added_by=bob)  # added while the scope was "team"
    url = share(client, alice, board)

    settings.SORAWEB_GALLERY_SCOPE = "team"
    assert client.get(files_of(url, bobs)[0]).status_code == 200
    settings.SORAWEB_GALLERY_SCOPE = "own"
    assert "bob&#x27;s private take" not in client.get(url).content.decode()
    assert all(client.get(path).status_code == 404 for path in files_of(url, bobs))
    assert client.get(files_of(url, first)[0]).status_code == 200


def test_the_public_board_page_shows_nothing_of_the_studio(client, alice, picks):
    board, _, _ = picks
    url = share(client, alice, board)
    html = client.get(url).content.decode()

    assert "alice" not in html and "Sign out" not in html
    addresses = re.findall(r'(?:href|src|poster|action)="([^"]*)"', html)
    assert addresses
    for address in addresses:
        assert address.startswith((url, "/static/")), address


def test_a_board_link_opens_nothing_else(client, alice, picks):
    board, (first, _), _ = picks
    other = ready(alice, "another job")
    url = share(client, alice, board)

    # Not the one-video addresses under the same token, nor the studio's.
    for path in (f"{url}video.mp4", f"{url}poster.jpg", f"{url}download"):
        assert client.get(path).status_code == 404, path
    studio = ("/", f"/?board={board.pk}", reverse("library:boards"), reverse("handover:shares"))
    for path in (*studio, f"/jobs/{first.pk}/", f"/jobs/{other.pk}/poster.jpg"):
        response = client.get(path)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], path


def test_a_single_video_link_opens_no_board_addresses(client, alice, picks):
    board, (first, _), _ = picks
    client.force_login(alice)
    response = client.post(reverse("handover:share", args=[first.pk]))
    url = urlsplit(response.context["url"]).path
    client.logout()

    assert client.get(url).status_code == 200
    assert all(client.get(path).status_code == 404 for path in files_of(url, first))


def test_an_altered_token_is_not_found(client, alice, picks):
    board, (first, _), _ = picks
    url = share(client, alice, board)
    token = url.strip("/").rpartition("/")[2]
    altered = token[:-1] + ("A" if token[-1] != "A" else "B")

    for path in (f"/s/{altered}/", *files_of(f"/s/{altered}/", first), f"/s/{token[:42]}/"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert b"Launch picks" not in response.content


def test_a_revoked_board_link_is_gone(client, alice, picks):
    board, (first, _), _ = picks
    url = share(client, alice, board)
    link = ShareLink.objects.get()
    client.force_login(alice)
    response = client.post(reverse("handover:revoke", args=[link.pk]), follow=True)
    assert "The share link to board “Launch picks” no longer works." in response.content.decode()
    client.logout()

    for path in (url, *files_of(url, first)):
        response = client.get(path)
        assert response.status_code == 410, path
        assert b"Launch picks" not in response.content
    assert b"no longer works" in client.get(url).content


def test_an_expired_board_link_is_gone(client, alice, picks):
    board, (first, _), _ = picks
    url = share(client, alice, board, days="1")
    ShareLink.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    assert client.get(url).status_code == 410
    assert client.get(files_of(url, first)[0]).status_code == 410


def test_a_board_link_dies_with_its_board(client, alice, picks):
    board, _, _ = picks
    url = share(client, alice, board)
    board.delete()

    assert client.get(url).status_code == 404 and not ShareLink.objects.exists()


def test_the_link_lives_the_chosen_number_of_days(client, alice, picks):
    board, _, _ = picks
    share(client, alice, board, days="30")
    share(client, alice, board, days="nonsense")
    lifetimes = [
        round((link.expires_at - link.created_at) / timedelta(days=1)) for link in ShareLink.objects.all()
    ]

    assert sorted(lifetimes) == [7, 30]


def test_only_the_boards_maker_or_staff_may_share_it(client, settings, alice, bob, staff, picks):
    board, _, _ = picks
    url = reverse("handover:share_board", args=[board.pk])
    client.force_login(bob)
    assert client.post(url).status_code == 403
    settings.SORAWEB_GALLERY_SCOPE = "own"
    assert client.post(url).status_code == 404
    assert client.get(url).status_code == 405
    assert not ShareLink.objects.exists()

    client.force_login(staff)
    assert client.post(url).status_code == 200
    assert ShareLink.objects.get().created_by == staff


def test_signed_out_nobody_may_share(client, picks):
    board, _, _ = picks
    response = client.post(reverse("handover:share_board", args=[board.pk]))

    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert not ShareLink.objects.exists()


def test_only_the_maker_or_staff_may_revoke_a_board_link(client, alice, bob, staff, picks):
    board, _, _ = picks
    url = share(client, alice, board)
    link = ShareLink.objects.get()

    client.force_login(bob)
    assert client.post(reverse("handover:revoke", args=[link.pk])).status_code == 404
    assert "Launch picks" not in client.get(reverse("handover:shares")).content.decode()
    client.logout()
    assert client.get(url).status_code == 200

    client.force_login(staff)
    client.post(reverse("handover:revoke", args=[link.pk]))
    client.logout()
    assert client.get(url).status_code == 410


def test_the_shares_page_names_the_board(client, alice, picks):
    board, (first, _), _ = picks
    share(client, alice, board)
    client.force_login(alice)
    client.post(reverse("handover:share", args=[first.pk]))
    html = client.get(reverse("handover:shares")).content.decode()

    assert f'href="/?board={board.pk}">Board: Launch picks</a>' in html
    assert f"#{first.pk} a red kite" in html
    assert html.count(">Revoke</button>") == 2


def test_the_boards_page_offers_the_share_form_to_the_maker_only(client, alice, bob, picks):
    board, _, _ = picks
    form = f'action="{reverse("handover:share_board", args=[board.pk])}"'

    client.force_login(alice)
    assert form in client.get(reverse("library:boards")).content.decode()
    client.force_login(bob)
    assert form not in client.get(reverse("library:boards")).content.decode()


def test_a_big_board_is_shown_a_page_at_a_time(client, monkeypatch, alice):
    jobs = [ready(alice, f"video number {n}") for n in range(3)]
    url = share(client, alice, board_of(alice, *jobs))
    monkeypatch.setattr(views, "BOARD_PAGE_SIZE", 2)

    first = client.get(url).content.decode()
    second = client.get(f"{url}?page=2").content.decode()
    assert set(re.findall(r"video number \d", first)) == {"video number 2", "video number 1"}
    assert re.findall(r"video number \d", second) == ["video number 0"]
    assert 'href="?page=2"' in first and 'href="?page=1"' in second


def test_an_empty_board_says_so(client, alice):
    url = share(client, alice, board_of(alice))

    assert b"no finished videos on this board yet" in client.get(url).content


def test_the_database_refuses_a_link_to_both_or_neither(alice, picks):
    board, (first, _), _ = picks
    for target in ({"job": first, "board": board}, {}):
        with pytest.raises(IntegrityError), transaction.atomic():
            ShareLink.objects.create(
                token_hash=f"{len(target)}" * 64,
                created_by=alice,
                expires_at=timezone.now() + timedelta(days=1),
                **target,
            )
    assert not ShareLink.objects.exists()
