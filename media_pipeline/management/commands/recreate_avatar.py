from django.core.management.base import BaseCommand

from media_pipeline import services
from media_pipeline.management.commands._targets import add_target_arguments, selected_personas


class Command(BaseCommand):
    help = "Queue avatar creation again from the stored photo of the chosen personas."

    def add_arguments(self, parser):
        add_target_arguments(parser)

    def handle(self, *args, **options):
        for persona in selected_personas(options):
            try:
                job = services.recreate_avatar(persona=persona, provider=options["provider"])
            except services.PipelineError as exc:
                self.stderr.write(f"persona {persona.pk}: {exc}")
            else:
                self.stdout.write(f"persona {persona.pk}: avatar job {job.pk} queued ({job.provider})")
