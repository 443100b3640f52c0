import json
from datetime import datetime, time, timedelta

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

    def __init__(self, *args, refused_uploads=None, **kwargs):
        super().__init__(*args, **kwargs)
        # Files jobs.uploads stopped at the size cap while they streamed in.
        self.refused_uploads = refused_uploads or {}
        if not self.references_allowed:
            # Only the widget: a file posted anyway still reaches clean_reference_image and is refused.
            self.fields["reference_image"].widget.attrs["disabled"] = True

    @property
    def references_allowed(self):
        """The gateway fetches a reference image by URL, so without a public address there is none."""
        return bool(settings.PUBLIC_BASE_URL)

    def model_choices(self):
        """The model radios, each with the sentence that tells Plus and Pro apart."""
        return [(radio, MODEL_NOTES.get(radio.data["value"], "")) for radio in self["model"]]

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

    def clean(self):
        cleaned = super().clean()
        upload, ratio = cleaned.get("reference_image"), cleaned.get("aspect_ratio")
        if upload and ratio:
            try:
                cleaned["reference_image"], self.instance.reference_note = images.normalise(upload, ratio)
            except images.ImageRejected as exc:
                self.add_error("reference_image", str(exc))
        return cleaned

    @classmethod
    def initial_from(cls, job):
        """The settings of an earlier job, for "Use these settings" (the image is not carried over)."""
        return job.job_settings()


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

    def apply(self, jobs):
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
        if values.get("fav"):
            jobs = jobs.favourites_of(self.user)
        if values.get("board"):
            jobs = jobs.on_board(values["board"], self.user)
        return jobs

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
