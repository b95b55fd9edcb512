"""The admin's per-persona usage and cost columns against the usage rows."""

import re
from decimal import Decimal

from django.db.models import Count, Sum
from django.urls import reverse

from media_pipeline.models import UsageRecord
from tests.personas.conftest import make_persona
from tests.personas.test_views import make_asset, make_render_job, usage


def test_admin_usage_and_cost_per_persona_equal_the_usage_rows(client, staff_user, persona, other_persona):
    # Jobs and library files beside the usage rows must not multiply the figures.
    job = make_render_job(persona)
    for n in range(3):
        make_asset(persona, job=job, title=f"clip {n}")
    usage(persona, "voice_clone", "0.75")
    usage(persona, "voice_synthesis", "0.0310", seconds=93, job=job)
    usage(persona, "avatar_video", "0.45", seconds=14, job=job)
    usage(other_persona, "voice_synthesis", "0.0125", seconds=37.5)
    idle = make_persona(staff_user)  # no usage at all
    client.force_login(staff_user)

    response = client.get(reverse("admin:personas_writingpersona_changelist"))

    assert response.status_code == 200
    model_admin = response.context["cl"].model_admin
    shown = {p.pk: (model_admin.uses(p), model_admin.total_cost_usd(p)) for p in response.context["cl"].result_list}
    expected = {
        row["persona"]: (row["uses"], row["cost"])
        for row in UsageRecord.objects.values("persona").annotate(uses=Count("pk"), cost=Sum("cost_usd"))
    }
    assert shown[persona.pk] == expected[persona.pk] == (3, Decimal("1.2310"))
    assert shown[other_persona.pk] == expected[other_persona.pk] == (1, Decimal("0.0125"))
    assert shown[idle.pk] == (0, Decimal("0"))
    cells = re.findall(r'field-uses">([^<]*)</td><td class="field-total_cost_usd">([^<]*)<', response.content.decode())
    assert sorted(cells) == [("0", "0.0000"), ("1", "0.0125"), ("3", "1.2310")]
