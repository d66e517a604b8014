from __future__ import annotations

from typing import Any

from django import forms


class DeployForm(forms.Form):
    ref = forms.CharField(max_length=300, help_text="A branch name or a full commit sha.")
    emergency_reason = forms.CharField(max_length=1000, required=False, strip=True)
    expected_sha = forms.RegexField(regex=r"^[0-9a-f]{40}$", required=False, help_text="The sha the plan showed.")


class PlanForm(forms.Form):
    ref = forms.CharField(max_length=300, required=False, help_text="A branch name or a full commit sha.")
    promote = forms.BooleanField(required=False, help_text="Ship what runs in the environment before this one.")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not data.get("ref") and not data.get("promote"):
            raise forms.ValidationError("say what to deploy: a branch name or a full commit sha (ref=...)")
        return data


class PromoteForm(forms.Form):
    expected_sha = forms.RegexField(regex=r"^[0-9a-f]{40}$", required=False, help_text="The sha the plan showed.")


LOCK_DURATIONS = [("", "until unlocked"), ("1", "1 hour"), ("4", "4 hours"), ("24", "1 day"), ("168", "1 week")]


class LockForm(forms.Form):
    reason = forms.CharField(max_length=500, strip=True, error_messages={"required": "say why you lock it"})
    hours = forms.TypedChoiceField(choices=LOCK_DURATIONS, coerce=int, empty_value=None, required=False)


class ReasonForm(forms.Form):
    """An optional reason (rejecting a deploy, marking one failed)."""

    reason = forms.CharField(max_length=500, required=False, strip=True)


class LogCursorForm(forms.Form):
    """`after`: the id of the last log line the page already shows."""

    after = forms.IntegerField(min_value=0, required=False)


class MatrixFilterForm(forms.Form):
    team = forms.CharField(max_length=100, required=False)
    q = forms.CharField(max_length=100, required=False)
    page = forms.IntegerField(
        min_value=1, max_value=100_000, required=False, error_messages={"invalid": "page must be a number: ?page=2"}
    )
    show = forms.ChoiceField(
        choices=[("", "a page"), ("all", "every service")],
        required=False,
        error_messages={"invalid_choice": "show takes one value: ?show=all shows every service on one page"},
    )
    # Applied in the browser to the rows shown (static/js/gantry.js); checked here so a typo says so.
    state = forms.ChoiceField(
        choices=[
            ("", "any"),
            ("failing", "failing"),
            ("deploying", "deploying"),
            ("locked", "locked"),
            ("drifted", "drifted"),
        ],
        required=False,
        error_messages={"invalid_choice": "state is one of failing, deploying, locked, drifted: ?state=failing"},
    )

    def clean_team(self) -> str:
        return self.cleaned_data["team"].replace("\0", "")

    def clean_q(self) -> str:
        return self.cleaned_data["q"].replace("\0", "").strip()  # PostgreSQL refuses NUL in text


class RollbackForm(forms.Form):
    """`to`: the deploy whose release to go back to; empty means the one before what runs now."""

    to = forms.IntegerField(min_value=1, required=False)
    confirm_schema = forms.BooleanField(required=False)  # the person saw the schema changes it goes back across
