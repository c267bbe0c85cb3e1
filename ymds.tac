"""``twistd -y ymds.tac``: the same service as ``twistd ymds``, configured by $YMDS_CONFIG."""
import os

from twisted.application import service
from twisted.internet import reactor

from ymds.tap import Options, makeService

options = Options()
options.parseOptions(os.environ.get("YMDS_TAC_ARGS", "").split())
application = service.Application("ymds")
makeService(options, reactor).setServiceParent(application)
