"""The base model registration form."""

from __future__ import annotations

from django import forms


class RegisterModelForm(forms.Form):
    name = forms.CharField(
        max_length=200, required=False, help_text="Defaults to the source's last part."
    )
    source = forms.CharField(
        max_length=500,
        help_text="An absolute directory on the server (config.json + tokenizer), or a hub id "
        "already in the local Hugging Face cache. Nothing is downloaded.",
    )
