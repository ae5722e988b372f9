"""The API token page: create, replace or revoke one's own token."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from annotate import selectors
from annotate.services.tokens import token_regenerate, token_revoke


def token_page(request: HttpRequest) -> HttpResponse:
    """GET: whether the person has a token. POST action=create: a new token, shown once on this
    response (never stored in a message or session). POST action=revoke: delete it."""
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "create":
            token = token_regenerate(user=request.user)
            return render(request, "tokens/tokens.html", {"token": token, "new_key": token.key}, status=201)
        if action == "revoke":
            if token_revoke(user=request.user):
                messages.success(request, "Your API token was revoked.")
            return redirect("api-tokens")
        return render(
            request,
            "tokens/tokens.html",
            {"token": selectors.token_of(user=request.user), "error": "Unknown action."},
            status=400,
        )
    return render(request, "tokens/tokens.html", {"token": selectors.token_of(user=request.user)})
