import json
import unicodedata
import uuid
from collections.abc import Callable
from datetime import datetime, time, timedelta
from typing import Any, cast

from django import forms
from django.conf import settings
from django.utils import timezone

from jobs import images
from jobs.models import VideoJob

PROMPT_HELP = (
    "Describe the scene, the subject and what moves; add style words such as “cinematic” "
    "or “hand-drawn animation”, the camera motion, and the lighting. "
    "Do not upload or describe photos of real people: the service refuses them."
)
MODEL_NOTES = {
    VideoJob.Model.PLUS: "Faster and cheaper. Good for drafts and most ideas.",
    VideoJob.Model.PRO: "Higher quality, but slower and costlier. For the final cut.",
}


# Unicode categories that draw nothing: controls, format characters (zero-width
# space, byte-order mark), separators, lone combining marks, private use, unassigned.
_INVISIBLE_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp", "Mn", "Me"}
# Blank characters Unicode files as letters or symbols (Hangul fillers, the blank Braille cell).
_BLANK_CHARACTERS = set("\u115f\u1160\u3164\uffa0\u2800")


def has_visible_text(text):
    return any(
        unicodedata.category(char) not in _INVISIBLE_CATEGORIES and char not in _BLANK_CHARACTERS
        for char in text
    )


VARIANT_CHOICES = [(count, str(count)) for count in range(1, VideoJob.MAX_VARIANTS + 1)]
REFERENCE_CHOICES = 8


def recent_references(user: Any, also: VideoJob | None = None) -> list[dict[str, Any]]:
    """The newest distinct reference images user may see, their own first.

    [{pk, name, aspect_ratio, owner}]: pk is the newest visible job that used the image.
    """
    if user is None or not user.is_authenticated:
        return []
    rows = list(
        VideoJob.objects.visible_to(user)
        .exclude(reference_image="")
        .order_by("-created_at", "-id")
        .values("pk", "reference_image", "aspect_ratio", "owner_id", "owner__username")[:60]
    )
    if also and also.reference_image:
        rows.insert(0, {"pk": also.pk, "reference_image": also.reference_image.name,
                        "aspect_ratio": also.aspect_ratio, "owner_id": also.owner_id,
                        "owner__username": also.owner.get_username()})  # fmt: skip
    found: dict[str, dict[str, Any]] = {}
    for row in rows:
        found.setdefault(row["reference_image"], row)
    newest = list(found.values())
    newest.sort(key=lambda row: row["owner_id"] != user.pk and row["pk"] != getattr(also, "pk", None))
    return [
        {"pk": row["pk"], "name": row["reference_image"], "aspect_ratio": row["aspect_ratio"],
         "owner": row["owner__username"]}
        for row in newest[:REFERENCE_CHOICES]
    ]  # fmt: skip


def _shape(aspect_ratio: str) -> str:
    return "portrait" if aspect_ratio == VideoJob.AspectRatio.PORTRAIT else "landscape"


class VideoJobForm(forms.ModelForm):
    # A plain FileField: the image is opened once, by jobs.images, with only the formats we accept.
    reference_image = forms.FileField(
        required=False,
        label="Reference image (optional)",
        help_text=(
            "JPEG, PNG or WebP up to 5 MB. It is center-cropped and resized to {}×{} "
            "(landscape) or {}×{} (portrait) to match the orientation."
        ).format(*VideoJob.SIZES["16:9"], *VideoJob.SIZES["9:16"]),
        widget=forms.FileInput(
            attrs={
                "accept": "image/jpeg,image/png,image/webp",
                "data-max-bytes": images.MAX_UPLOAD_BYTES,
                # The preview crops to the size the server will make.
                "data-sizes": json.dumps(VideoJob.SIZES),
            }
        ),
    )

    variants = forms.TypedChoiceField(
        choices=VARIANT_CHOICES,
        coerce=int,
        required=False,
        empty_value=None,  # One, as builds() reads it.
        initial=1,
        label="How many",
        help_text="Each variant is its own video (and counts against your limits); keep the best.",
        widget=forms.RadioSelect(attrs={"class": "choice__input"}),
    )
    # The pk of an earlier job whose stored (already fitted) image the new jobs share.
    reuse_reference = forms.TypedChoiceField(
        choices=[],
        coerce=int,
        required=False,
        empty_value=None,
        label="Or reuse an image the team used",
        widget=forms.RadioSelect(attrs={"class": "choice__input"}),
    )

    class Meta:
        model = VideoJob
        fields = [*VideoJob.SETTINGS, "reference_image"]
        labels = {"prompt": "Prompt", "model": "Model", "aspect_ratio": "Orientation", "duration": "Length"}
        help_texts = {"prompt": PROMPT_HELP}
        widgets = {
            "prompt": forms.Textarea(
                attrs={"rows": 6, "placeholder": "A paper boat drifting down a rainy street, cinematic, dusk"}
            ),
            "model": forms.RadioSelect(attrs={"class": "choice__input"}),
            "aspect_ratio": forms.RadioSelect(attrs={"class": "choice__input"}),
            "duration": forms.RadioSelect(attrs={"class": "choice__input"}),
        }
        error_messages = {
            "prompt": {
                "required": "Describe the video you want.",
                "max_length": "Keep the prompt under %(limit_value)d characters (it has %(show_value)d).",
            },
        }

    def __init__(self, *args, refused_uploads=None, user=None, source=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.reference_options = recent_references(user, also=source)
        cast(forms.ChoiceField, self.fields["reuse_reference"]).choices = [
            (option["pk"], f"{option['owner']}'s {_shape(option['aspect_ratio'])} image")
            for option in self.reference_options
        ]
        # Files jobs.uploads stopped at the size cap while they streamed in.
        self.refused_uploads = refused_uploads or {}
        if not self.references_allowed:
            # Only the widget: a file posted anyway still reaches clean_reference_image and is refused.
            self.fields["reference_image"].widget.attrs["disabled"] = True

    @property
    def references_allowed(self):
        """The gateway fetches a reference image by URL: a presigned one on the bucket, or
        a signed link to soraweb's public address; with neither there is none."""
        return bool(settings.PUBLIC_BASE_URL or settings.S3_BUCKET)

    def model_choices(self):
        """The model radios, each with the sentence that tells Plus and Pro apart."""
        return [(radio, MODEL_NOTES.get(radio.data["value"], "")) for radio in self["model"]]

    def clean_prompt(self):
        prompt = self.cleaned_data["prompt"]
        if not has_visible_text(prompt):
            # Zero-width spaces and byte-order marks pass `required`, and each prompt is a paid call.
            raise forms.ValidationError("Describe the video you want: this prompt has no visible characters.")
        return prompt

    def clean_reference_image(self):
        if "reference_image" in self.refused_uploads:
            raise forms.ValidationError(
                f"This image is larger than the {images.MAX_UPLOAD_BYTES // 2**20} MB limit: "
                "choose a smaller one (saved as JPEG, a photo is usually far smaller)."
            )
        upload = self.cleaned_data.get("reference_image")
        if upload and not self.references_allowed:
            raise forms.ValidationError(
                "Reference images are turned off on this server: the video service fetches the image "
                "from a public web address, and PUBLIC_BASE_URL is not set. Ask an admin to set it, "
                "or submit without an image."
            )
        return upload

    def reference_radios(self):
        """The reuse radios, each with its option (pk, name, aspect_ratio, owner) for the thumbnail."""
        return list(zip(self["reuse_reference"], self.reference_options, strict=True))

    def clean(self):
        cleaned = super().clean() or {}
        upload, ratio = cleaned.get("reference_image"), cleaned.get("aspect_ratio")
        if cleaned.get("reuse_reference"):
            self._clean_reuse(cleaned, upload, ratio)
            return cleaned
        if upload and ratio:
            try:
                cleaned["reference_image"], self.instance.reference_note = images.normalise(upload, ratio)
            except images.ImageRejected as exc:
                self.add_error("reference_image", str(exc))
        return cleaned

    def _clean_reuse(self, cleaned, upload, ratio):
        """Point the new jobs at the stored image of an earlier job the person may see."""
        source = (
            VideoJob.objects.visible_to(self.user)
            .exclude(reference_image="")
            .filter(pk=cleaned["reuse_reference"])
            .first()
            if self.user
            else None
        )
        if upload:
            self.add_error("reuse_reference", "Choose either a new image or an earlier one, not both.")
        elif source is None:
            self.add_error(
                "reuse_reference", "That image is no longer available; choose another or upload one."
            )
        elif not self.references_allowed:
            self.add_error(
                "reuse_reference", "Reference images are turned off on this server (PUBLIC_BASE_URL)."
            )
        elif ratio and source.aspect_ratio != ratio:
            shape = _shape(source.aspect_ratio)
            self.add_error(
                "reuse_reference",
                f"That image was fitted for {shape} ({source.aspect_ratio}): choose {shape} or another one.",
            )
        else:
            # The same stored file: no upload, no second copy (jobs.media keeps shared files).
            cleaned["reference_image"] = source.reference_image.name
            self.instance.reference_note = source.reference_note

    def builds(self, owner: Any) -> list[Callable[[], VideoJob]]:
        """One build per variant for submission.submit_many; variants share a group and one image file."""
        count = self.cleaned_data.get("variants") or 1
        group = uuid.uuid4() if count > 1 else None
        stored: list[str] = []

        def build() -> VideoJob:
            job = VideoJob(
                owner=owner,
                group=group,
                reference_note=self.instance.reference_note,
                **{name: self.cleaned_data[name] for name in VideoJob.SETTINGS},
            )
            # The first variant stores an uploaded image; the others point at that file.
            job.reference_image = stored[0] if stored else (self.cleaned_data.get("reference_image") or "")
            job.save()
            stored.append(job.reference_image.name)
            return job

        return [build] * count

    @classmethod
    def initial_from(cls, job, variants=1):
        """The settings of an earlier job, for "Use these settings", its image picked to reuse."""
        initial = job.job_settings() | {"variants": variants}
        if job.reference_image:
            initial["reuse_reference"] = job.pk
        return initial


class GalleryFilterForm(forms.Form):
    """The gallery's filters, read from the URL. A value that does not parse is dropped, never an error."""

    WHEN = {"today": "Today", "week": "This week", "month": "This month", "custom": "Between dates"}

    q = forms.CharField(required=False, max_length=200, label="Search prompts, numbers or gateway ids")
    model = forms.ChoiceField(required=False, choices=[("", "Any model"), *VideoJob.Model.choices])
    aspect_ratio = forms.ChoiceField(
        required=False, label="Orientation", choices=[("", "Any orientation"), *VideoJob.AspectRatio.choices]
    )
    duration = forms.TypedChoiceField(
        required=False, label="Length", coerce=int, empty_value=None,
        choices=[("", "Any length"), *VideoJob.Duration.choices],
    )  # fmt: skip
    # A username: the select offering the people within the scope is filled by the page.
    who = forms.CharField(required=False, label="Made by", max_length=150)
    when = forms.ChoiceField(required=False, label="Made", choices=[("", "Any time"), *WHEN.items()])
    start = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))
    fav = forms.BooleanField(required=False, label="Favourites only")
    board = forms.IntegerField(required=False, min_value=1, max_value=2**31 - 1, widget=forms.HiddenInput)

    def __init__(self, data, user):
        super().__init__(data)
        self.user = user

    def values(self):
        """{field: value} for each filter given and valid; the rest are left out."""
        self.is_valid()
        return {
            name: value
            for name, value in self.cleaned_data.items()
            if name not in self.errors and value not in (None, "", False)
        }

    def apply(self, jobs, *, picks=True):
        """jobs within the filters; picks=False leaves out favourites and board (see counted_among)."""
        values = self.values()
        jobs = jobs.filtered(
            model=values.get("model"),
            aspect_ratio=values.get("aspect_ratio"),
            duration=values.get("duration"),
            **self.created_between(values),
        )
        if values.get("who"):
            # Within the scope already: naming someone out of sight finds nothing.
            jobs = jobs.filter(owner__username=values["who"])
        if values.get("q"):
            jobs = jobs.search(values["q"])
        return self.apply_picks(jobs) if picks else jobs

    def apply_picks(self, jobs):
        """jobs within the favourites and board filters, those chosen."""
        values = self.values()
        if values.get("fav"):
            jobs = jobs.favourites_of(self.user)
        if values.get("board"):
            jobs = jobs.on_board(values["board"], self.user)
        return jobs

    def counted_among(self, unpicked):
        """(jobs, ids) to count the filtered jobs by: unpicked (apply(picks=False)) within all but one
        of the favourites and board filters, and that one's job ids (None if neither is chosen)."""
        values = self.values()
        if values.get("board"):
            jobs = unpicked.favourites_of(self.user) if values.get("fav") else unpicked
            return jobs, unpicked.board_job_ids(values["board"], self.user)
        if values.get("fav"):
            return unpicked, unpicked.favourite_job_ids(self.user)
        return unpicked, None

    @staticmethod
    def created_between(values, now=None):
        """created_after/created_before for the date range, in the studio's time zone."""
        today = timezone.localdate(now)
        start = end = None
        match values.get("when"):
            case "today":
                start = today
            case "week":
                start = today - timedelta(days=today.weekday())
            case "month":
                start = today.replace(day=1)
            case "custom":
                start = values.get("start")
                end = values.get("end")

        def moment(day, days_later=0):
            if not day:
                return None
            try:
                return timezone.make_aware(datetime.combine(day, time.min) + timedelta(days=days_later))
            except OverflowError:  # The last day of year 9999 has no next day.
                return None

        # "To" includes its whole day.
        return {"created_after": moment(start), "created_before": moment(end, days_later=1)}

    def params(self):
        """The valid filters as URL parameters, for links that keep them."""
        values = self.values()
        params = {name: self.data.get(name) for name in values}
        if values.get("when") != "custom":
            params.pop("start", None)
            params.pop("end", None)
        return {name: value for name, value in params.items() if value}
