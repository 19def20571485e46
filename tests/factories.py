"""factory-boy factories. Each creates rows in the schema active on the connection."""

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from tenants import roles


class StaffUserFactory(factory.django.DjangoModelFactory):
    """A staff member; `StaffUserFactory(role="auditor")` puts them in that role's group."""

    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"staff{n}@isp.example")
    email = factory.SelfAttribute("username")
    is_staff = True
    password = factory.django.Password("staff-password-0")

    @factory.post_generation
    def role(self, create, extracted, **kwargs):
        if create:
            self.groups.set([Group.objects.get(name=extracted or roles.SUPPORT)])
