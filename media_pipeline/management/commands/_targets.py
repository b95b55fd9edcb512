"""Shared argument handling: commands act on personas chosen by id or by the owner's email."""

from django.core.management.base import CommandError

from personas.models import WritingPersona


def add_target_arguments(parser) -> None:
    parser.add_argument("--persona", type=int, action="append", default=[], help="Persona id (repeatable).")
    parser.add_argument("--user", action="append", default=[], help="Owner's email or username (repeatable).")
    parser.add_argument("--provider", default="", help="Provider to use instead of the configured one.")


def selected_personas(options):
    if not options["persona"] and not options["user"]:
        raise CommandError("Name at least one --persona ID or --user EMAIL.")
    personas = WritingPersona.objects.none()
    if options["persona"]:
        personas |= WritingPersona.objects.filter(pk__in=options["persona"])
    for who in options["user"]:
        personas |= WritingPersona.objects.filter(user__email__iexact=who) | WritingPersona.objects.filter(
            user__username=who
        )
    personas = personas.distinct().select_related("user")
    if not personas.exists():
        raise CommandError("No persona matches.")
    return personas
