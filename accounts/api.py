"""Account API: user tokens, and the admin API for apps, their secrets, admins and enrollments."""

from __future__ import annotations

from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.views import TokenRefreshView

from accounts import services
from accounts.models import App, User
from accounts.permissions import IsStaff, app_for_admin
from accounts.selectors import apps_administered_by
from accounts.throttles import client_address, guess_throttle_check, guess_throttle_fail
from accounts.tokens import UserTokenAuthentication, user_tokens_issue
from keymaster.errors import InvalidInput, KeymasterError, NotFound, validated
from keymaster.fields import StrictCharField
from keymaster.openapi import NOT_BLANK_PATTERN, errors


class AuthenticationFailedError(KeymasterError):
    status_code = status.HTTP_401_UNAUTHORIZED
    code = "authentication_failed"


class LoginIn(serializers.Serializer):
    email = serializers.EmailField()
    password = StrictCharField(trim_whitespace=False)


class TokenPairOut(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()


class UserTokenView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=LoginIn,
        responses={200: TokenPairOut, **errors(401, 429)},
        tags=["tokens"],
        auth=[],
    )
    def post(self, request: Request) -> Response:
        """Exchange a user's email and password for access and refresh tokens."""
        data = validated(LoginIn, request.data)
        address = client_address(request)
        guess_throttle_check(f"user:{data['email']}", address)
        user = authenticate(request, email=data["email"], password=data["password"])
        if user is None:
            guess_throttle_fail(f"user:{data['email']}", address)
            raise AuthenticationFailedError("No active account has that email and password.")
        return Response(user_tokens_issue(user))


class RefreshIn(serializers.Serializer):
    refresh = serializers.CharField()


class AccessOut(serializers.Serializer):
    access = serializers.CharField()


@extend_schema(
    request=RefreshIn, responses={200: AccessOut, **errors(401)}, tags=["tokens"], auth=[]
)
class UserTokenRefreshView(TokenRefreshView):
    """Exchange a refresh token for a new access token."""

    authentication_classes: list = []


class AppOut(serializers.Serializer):
    app_id = serializers.UUIDField()
    client_id = serializers.CharField()
    name = serializers.CharField()
    created_at = serializers.DateTimeField()
    secret_rotated_at = serializers.DateTimeField()


class AppWithSecretOut(AppOut):
    client_secret = serializers.CharField(help_text="Shown this once: store it now.")


class AppIn(serializers.Serializer):
    openapi_request_extra = {"properties": {"name": {"pattern": NOT_BLANK_PATTERN}}}

    name = StrictCharField(max_length=200)
    admin_email = serializers.EmailField(required=False)


class UserRefIn(serializers.Serializer):
    openapi_request_extra = {"oneOf": [{"required": ["email"]}, {"required": ["user_id"]}]}

    email = serializers.EmailField(required=False)
    user_id = serializers.UUIDField(required=False)

    def validate(self, attrs: dict) -> dict:
        if bool(attrs.get("email")) == bool(attrs.get("user_id")):
            raise serializers.ValidationError({"email": ["Give exactly one of email or user_id."]})
        return attrs


class EnrollmentOut(serializers.Serializer):
    app_id = serializers.UUIDField(source="app.app_id")
    user_id = serializers.UUIDField(source="user.id")
    email = serializers.EmailField(source="user.email")
    created_at = serializers.DateTimeField()


def _user_ref(data: dict) -> User:
    if data.get("email"):
        return _user_by_email(data["email"], "email")
    try:
        return User.objects.get(pk=data["user_id"])
    except User.DoesNotExist:
        raise NotFound("No user has that user_id.", fields={"user_id": ["Unknown user."]}) from None


def _user_by_email(email: str, field: str) -> User:
    # 404, not 400: the email is well formed (the schema's promise), the user is not there.
    try:
        return services.user_by_email(email)
    except InvalidInput:
        raise NotFound("No user has that email.", fields={field: ["Unknown user."]}) from None


def _app_out(app: App, secret: str | None = None) -> dict:
    out = AppOut(app).data
    if secret is not None:
        out["client_secret"] = secret
    return out


class AppListView(APIView):
    authentication_classes = [UserTokenAuthentication]

    @extend_schema(
        responses={200: inline_serializer("AppListOut", {"apps": AppOut(many=True)})},
        tags=["admin"],
        operation_id="api_apps_list",
    )
    def get(self, request: Request) -> Response:
        """List the apps the caller administers."""
        return Response({"apps": [_app_out(app) for app in apps_administered_by(request.user)]})

    @extend_schema(
        request=AppIn, responses={201: AppWithSecretOut, **errors(403, 404)}, tags=["admin"]
    )
    def post(self, request: Request) -> Response:
        """Create an app (staff only); the answer shows its client secret once."""
        if not IsStaff().has_permission(request, self):
            self.permission_denied(request, message=IsStaff.message)
        data = validated(AppIn, request.data)
        admin = (
            _user_by_email(data["admin_email"], "admin_email") if data.get("admin_email") else None
        )
        app, secret = services.app_create(name=data["name"], admin=admin)
        return Response(_app_out(app, secret), status=status.HTTP_201_CREATED)


class AppDetailView(APIView):
    authentication_classes = [UserTokenAuthentication]

    @extend_schema(responses={200: AppOut}, tags=["admin"])
    def get(self, request: Request, app_id: str) -> Response:
        """Show one app."""
        return Response(_app_out(app_for_admin(app_id, request.user)))


class AppRotateSecretView(APIView):
    authentication_classes = [UserTokenAuthentication]

    @extend_schema(request=None, responses={200: AppWithSecretOut}, tags=["admin"])
    def post(self, request: Request, app_id: str) -> Response:
        """Replace the app's client secret; the answer shows the new one once."""
        app = app_for_admin(app_id, request.user)
        return Response(_app_out(app, services.app_rotate_secret(app=app)))


class EnrollmentListView(APIView):
    authentication_classes = [UserTokenAuthentication]

    @extend_schema(
        request=UserRefIn, responses={201: EnrollmentOut, 200: EnrollmentOut}, tags=["admin"]
    )
    def post(self, request: Request, app_id: str) -> Response:
        """Enroll a user in the app (by email or user_id)."""
        app = app_for_admin(app_id, request.user)
        user = _user_ref(validated(UserRefIn, request.data))
        enrollment, created = services.enrollment_add(app=app, user=user)
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(EnrollmentOut(enrollment).data, status=code)


class EnrollmentDetailView(APIView):
    authentication_classes = [UserTokenAuthentication]

    @extend_schema(request=None, responses={204: None}, tags=["admin"])
    def delete(self, request: Request, app_id: str, user_id: str) -> Response:
        """Remove a user's enrollment."""
        app = app_for_admin(app_id, request.user)
        services.enrollment_remove(app=app, user_id=user_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AppAdminListView(APIView):
    authentication_classes = [UserTokenAuthentication]

    @extend_schema(
        request=UserRefIn,
        responses={
            201: inline_serializer(
                "AppAdminOut",
                {
                    "app_id": serializers.UUIDField(),
                    "user_id": serializers.UUIDField(),
                    "email": serializers.EmailField(),
                },
            )
        },
        tags=["admin"],
    )
    def post(self, request: Request, app_id: str) -> Response:
        """Make a user an administrator of the app."""
        app = app_for_admin(app_id, request.user)
        user = _user_ref(validated(UserRefIn, request.data))
        services.app_admin_add(app=app, user=user)
        body = {"app_id": str(app.app_id), "user_id": str(user.id), "email": user.email}
        return Response(body, status=status.HTTP_201_CREATED)
