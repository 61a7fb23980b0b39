"""Account API: user tokens, and the admin API for apps, their secrets, admins and enrollments."""

from __future__ import annotations

from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services
from accounts.models import App, Invitation, User
from accounts.permissions import IsStaff, app_for_admin
from accounts.selectors import apps_administered_by
from accounts.throttles import client_address, guess_throttled, user_subject
from accounts.tokens import (
    UserTokenAuthentication,
    token_revoke,
    user_refresh_token_read,
    user_tokens_issue,
    user_tokens_refresh,
)
from keymaster.errors import InvalidInput, KeymasterError, NotFound, validated
from keymaster.fields import StrictCharField
from keymaster.openapi import NOT_BLANK_PATTERN, errors
from push.services.apps import (
    app_client_secret_rotate,
    app_create_by_admin,
    app_invitation_accept,
    app_invite,
    enrollment_remove_by_admin,
)


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
        user = guess_throttled(
            user_subject(data["email"]),
            client_address(request),
            lambda: authenticate(request, email=data["email"], password=data["password"]),
        )
        if user is None:
            raise AuthenticationFailedError("No active account has that email and password.")
        return Response(user_tokens_issue(user))


class RefreshIn(serializers.Serializer):
    refresh = StrictCharField(trim_whitespace=False)


class _RefreshTokenView(APIView):
    """An endpoint authenticated by the refresh token in its body: a bad one is a 401."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get_authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class UserTokenRefreshView(_RefreshTokenView):
    @extend_schema(
        request=RefreshIn, responses={200: TokenPairOut, **errors(401)}, tags=["tokens"], auth=[]
    )
    def post(self, request: Request) -> Response:
        """Exchange a refresh token, once, for new access and refresh tokens."""
        data = validated(RefreshIn, request.data)
        return Response(user_tokens_refresh(data["refresh"]))


class UserTokenRevokeView(_RefreshTokenView):
    @extend_schema(
        request=RefreshIn, responses={204: None, **errors(401)}, tags=["tokens"], auth=[]
    )
    def post(self, request: Request) -> Response:
        """Sign out: revoke a refresh token (it can no longer be exchanged)."""
        data = validated(RefreshIn, request.data)
        token_revoke(user_refresh_token_read(data["refresh"]))
        return Response(status=status.HTTP_204_NO_CONTENT)


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


class InvitationOut(serializers.Serializer):
    app_id = serializers.UUIDField()
    email = serializers.EmailField(required=False)
    user_id = serializers.UUIDField(required=False)
    status = serializers.ChoiceField(["invited"])


def _invite(request: Request, app_id: str, role: str) -> Response:
    """Invite a person to the app: the same 202 whether or not they have an account."""
    app = app_for_admin(app_id, request.user)
    data = validated(UserRefIn, request.data)
    ref = {"email": data["email"]} if data.get("email") else {"user_id": str(data["user_id"])}
    app_invite(app=app, role=role, actor=request.user, **ref)
    body = {"app_id": str(app.app_id), **ref, "status": "invited"}
    return Response(body, status=status.HTTP_202_ACCEPTED)


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
        app, secret = app_create_by_admin(name=data["name"], actor=request.user, admin=admin)
        return Response(_app_out(app, secret), status=status.HTTP_201_CREATED)


def _user_by_email(email: str, field: str) -> User:
    # Staff only (app creation): 404, not 400: the email is well formed, the user is not there.
    try:
        return services.user_by_email(email)
    except InvalidInput:
        raise NotFound("No user has that email.", fields={field: ["Unknown user."]}) from None


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
        return Response(_app_out(app, app_client_secret_rotate(app=app, actor=request.user)))


class EnrollmentListView(APIView):
    authentication_classes = [UserTokenAuthentication]

    @extend_schema(request=UserRefIn, responses={202: InvitationOut}, tags=["admin"])
    def post(self, request: Request, app_id: str) -> Response:
        """Invite a person (by email or user_id) to use the app; they accept it."""
        return _invite(request, app_id, Invitation.Role.USER)


class EnrollmentDetailView(APIView):
    authentication_classes = [UserTokenAuthentication]

    @extend_schema(request=None, responses={204: None}, tags=["admin"])
    def delete(self, request: Request, app_id: str, user_id: str) -> Response:
        """Remove a user's enrollment."""
        app = app_for_admin(app_id, request.user)
        enrollment_remove_by_admin(app=app, user_id=user_id, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AppAdminListView(APIView):
    authentication_classes = [UserTokenAuthentication]

    @extend_schema(request=UserRefIn, responses={202: InvitationOut}, tags=["admin"])
    def post(self, request: Request, app_id: str) -> Response:
        """Invite a person (by email or user_id) to administer the app; they accept it."""
        return _invite(request, app_id, Invitation.Role.ADMIN)


class PendingInvitationOut(serializers.Serializer):
    app_id = serializers.UUIDField(source="app.app_id")
    app_name = serializers.CharField(source="app.name")
    role = serializers.ChoiceField(Invitation.Role.choices)
    created_at = serializers.DateTimeField()


class InvitationListView(APIView):
    authentication_classes = [UserTokenAuthentication]

    @extend_schema(
        responses={
            200: inline_serializer(
                "InvitationListOut", {"invitations": PendingInvitationOut(many=True)}
            )
        },
        tags=["account"],
    )
    def get(self, request: Request) -> Response:
        """List the invitations waiting for the caller's email."""
        pending = services.invitations_pending(request.user)
        return Response({"invitations": PendingInvitationOut(pending, many=True).data})


class InvitationAcceptView(APIView):
    authentication_classes = [UserTokenAuthentication]

    @extend_schema(
        request=None,
        responses={
            200: inline_serializer(
                "InvitationAcceptOut",
                {
                    "app_id": serializers.UUIDField(),
                    "roles": serializers.ListField(child=serializers.CharField()),
                },
            ),
            **errors(404),
        },
        tags=["account"],
    )
    def post(self, request: Request, app_id: str) -> Response:
        """Accept the caller's invitations to the app: enroll, or become an admin."""
        roles = app_invitation_accept(user=request.user, app_id=app_id)
        if not roles:
            raise NotFound("You have no invitation to that app.")
        return Response({"app_id": str(app_id), "roles": roles})


class InvitationDetailView(APIView):
    authentication_classes = [UserTokenAuthentication]

    @extend_schema(request=None, responses={204: None, **errors(404)}, tags=["account"])
    def delete(self, request: Request, app_id: str) -> Response:
        """Decline the caller's invitations to the app."""
        services.invitation_decline(user=request.user, app_id=app_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
