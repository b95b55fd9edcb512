# The wizard persona (analysed writing, Pro tier) for the upload tests.
from tests.onboarding.conftest import persona  # noqa: F401
