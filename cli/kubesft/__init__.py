"""kubesft from Python and the command line: ``from kubesft import Client, SFTJob``.

``SFTJob.spec`` is the same pydantic model (``kubesft_api.sftjob.SFTJobSpec``) the operator and
its admission webhook validate with, so a spec that builds here passes the same checks there.
"""

from kubesft.client import Client, Event, WatchEvent
from kubesft.errors import KubesftError
from kubesft.job import SFTJob
from kubesft_api.sftjob import SFTJobSpec
from kubesft_api.status import SFTJobStatus

__all__ = ["Client", "Event", "KubesftError", "SFTJob", "SFTJobSpec", "SFTJobStatus", "WatchEvent"]
