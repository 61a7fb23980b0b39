"""Template filters the site's pages share."""

from __future__ import annotations

from django import template

from accounts.selectors import user_is_admin

register = template.Library()


@register.filter
def administers_any(user: object) -> bool:
    """Return whether the signed-in `user` may open the Console (the top bar's link)."""
    return bool(getattr(user, "is_authenticated", False)) and user_is_admin(user)
