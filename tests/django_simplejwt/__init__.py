"""Tokens minted by the real djangorestframework-simplejwt, and the answers DRF + simplejwt give.

`settings.py` beside this is the platform's token issuer in miniature. The installed simplejwt (5.5.1,
requirements-dev.txt) writes `user_id` as a string (5.5.1 changed `Token.for_user` to always stringify
it: jazzband/djangorestframework-simplejwt#887). 5.3.x up to 5.5.0 wrote an integer primary key as a
JSON number. Two versions of one distribution cannot be installed side by side in one environment,
so the integer shape is produced by `access_token_53()`: 5.3.1's `for_user`, copied from its source
(rest_framework_simplejwt/tokens.py at tag v5.3.1), on top of the installed 5.5.1's token machinery
(claims, lifetime, jti, signing). Everything else in a 5.3.1 access token is what 5.5.1 writes.

`reference_answer` runs an Authorization header through DRF with simplejwt's own authentication
(JWTStatelessUserAuthentication: the same token checks as JWTAuthentication, without a user table),
so a test can compare our answer with simplejwt's for the very same header.
"""

from __future__ import annotations

import functools
import json
from datetime import timedelta
from types import ModuleType
from typing import Any


@functools.cache
def setup() -> ModuleType:
    """Configure Django from settings.py once (no DJANGO_SETTINGS_MODULE: the environment is left alone)."""
    import django
    from django.conf import settings

    from django_simplejwt import settings as issuer

    if not settings.configured:
        settings.configure(**{name: getattr(issuer, name) for name in dir(issuer) if name.isupper()})
    django.setup()
    return issuer


def _user(user_id: int) -> Any:
    setup()
    from django.contrib.auth.models import User

    return User(id=user_id, username=f"user{user_id}")  # unsaved: for_user reads its id only


def access_token(user_id: int, *, version: str = "5.5", expired: bool = False) -> str:
    """An access token as simplejwt `version` ("5.5": 5.5.1, `user_id` a string; "5.3": an integer)
    mints it at login (`RefreshToken.for_user(user).access_token`, as TokenObtainPairView does).
    `expired`: minted 31 minutes ago (the access lifetime is 30)."""
    setup()
    from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

    user = _user(user_id)
    if version == "5.5":
        token: Any = RefreshToken.for_user(user).access_token
    elif version == "5.3":
        token = access_token_53().for_user(user)
    else:
        raise ValueError(version)
    if expired:
        past = token.current_time - timedelta(minutes=31)
        token.set_iat(at_time=past)
        token.set_exp(from_time=past, lifetime=AccessToken.lifetime)
    return str(token)


def refresh_token(user_id: int) -> str:
    setup()
    from rest_framework_simplejwt.tokens import RefreshToken

    return str(RefreshToken.for_user(_user(user_id)))


@functools.cache
def access_token_53() -> Any:
    """AccessToken with simplejwt 5.3.1's `for_user` (a class built once Django is configured)."""
    setup()
    from rest_framework_simplejwt.settings import api_settings
    from rest_framework_simplejwt.tokens import AccessToken

    class AccessToken53(AccessToken):
        @classmethod
        def for_user(cls, user: Any) -> Any:
            # rest_framework_simplejwt/tokens.py, v5.3.1, Token.for_user (CHECK_REVOKE_TOKEN is off by default).
            user_id = getattr(user, api_settings.USER_ID_FIELD)
            if not isinstance(user_id, int):
                user_id = str(user_id)

            token = cls()
            token[api_settings.USER_ID_CLAIM] = user_id
            return token

    return AccessToken53


def reference_answer(authorization: str | None, method: str = "GET") -> tuple[int, Any, str | None]:
    """(status, JSON body, WWW-Authenticate) of a DRF view protected by simplejwt (serving GET), for this
    header and method."""
    setup()
    from rest_framework.permissions import IsAuthenticated
    from rest_framework.response import Response
    from rest_framework.test import APIRequestFactory
    from rest_framework.views import APIView

    class WhoAmI(APIView):
        permission_classes = (IsAuthenticated,)

        def get(self, request: Any) -> Response:
            return Response({"user": request.user.id})

    factory = APIRequestFactory()
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    request = factory.generic(method, "/whoami/", **headers)
    response = WhoAmI.as_view()(request)
    return response.status_code, json.loads(json.dumps(response.data)), response.get("WWW-Authenticate")
