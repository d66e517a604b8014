from __future__ import annotations

from django import forms


class DeployForm(forms.Form):
    ref = forms.CharField(max_length=300, help_text="A branch name or a full commit sha.")


class LogCursorForm(forms.Form):
    """`after`: the id of the last log line the page already shows."""

    after = forms.IntegerField(min_value=0, required=False)


class MatrixFilterForm(forms.Form):
    team = forms.CharField(max_length=100, required=False)
    q = forms.CharField(max_length=100, required=False)
