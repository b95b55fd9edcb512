from django.core.management.base import BaseCommand

from media_pipeline.reports import adoption_metrics, cost_rows

TARGETS = {"voice_completion_pct": 60, "avatar_completion_pct": 50, "persona_content_pct": 80}


class Command(BaseCommand):
    help = "Costs by user, tier, provider and month, and the adoption metrics."

    def add_arguments(self, parser):
        parser.add_argument("--by", choices=["user", "tier", "provider", "month"], action="append")

    def handle(self, *args, **options):
        for group in options["by"] or ["user", "tier", "provider", "month"]:
            self.stdout.write(f"\nCost by {group}")
            self.stdout.write(f"{group:<32} {'uses':>6} {'minutes':>9} {'cost USD':>10}")
            for key, uses, seconds, cost in cost_rows(group):
                label = key.strftime("%Y-%m") if hasattr(key, "strftime") else str(key)
                self.stdout.write(f"{label:<32} {uses:>6} {(seconds or 0) / 60:>9.2f} {cost or 0:>10.4f}")
        self.stdout.write("\nAdoption")
        for name, value in adoption_metrics().items():
            target = f" (target > {TARGETS[name]}%)" if name in TARGETS else ""
            shown = "n/a" if value is None else value
            self.stdout.write(f"{name:<24} {shown}{target}")
