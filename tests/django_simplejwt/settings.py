"""The platform's token issuer in miniature: a Django project with djangorestframework-simplejwt at its
defaults (HS256 signed with SECRET_KEY, AccessToken only, `user_id` claim), as the Halum Hut platform runs it.
Tests only (tests/django_simplejwt/__init__.py configures it); no database: tokens are minted for unsaved
users and checked by simplejwt's stateless authentication."""

from datetime import timedelta

from support import JWT_SECRET

SECRET_KEY = JWT_SECRET  # simplejwt's default SIGNING_KEY
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
    "rest_framework_simplejwt",
]
DATABASES: dict[str, dict[str, str]] = {}
ALLOWED_HOSTS = ["testserver"]
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework_simplejwt.authentication.JWTStatelessUserAuthentication"],
    "UNAUTHENTICATED_USER": None,
}
# simplejwt's defaults (HS256, SECRET_KEY, "user_id", "token_type", AccessToken only), except the access
# lifetime, which the platform sets to 30 minutes.
SIMPLE_JWT = {"ACCESS_TOKEN_LIFETIME": timedelta(minutes=30)}
