"""Portal customers log in with their e-mail address, found through the blind index.

Their Django username is a random handle (not personal data: auth_user is not encrypted)."""

from django.contrib.auth.backends import ModelBackend


class CustomerEmailBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        if not username or "@" not in username or password is None:
            return None
        from .services import customer_by_email

        customer = customer_by_email(username)
        user = customer.portal_user if customer is not None else None
        if user is None:
            # Same cost as a real check, so timing does not reveal which e-mails are customers.
            self._dummy_check(password)
            return None
        if user.check_password(password) and self.user_can_authenticate(user):
            return user
        return None

    @staticmethod
    def _dummy_check(password: str) -> None:
        from django.contrib.auth.hashers import make_password

        make_password(password)
