"""What the /docs page says each route may answer besides success."""

from digitnet.web.schemas import ErrorOut

ERRORS = {
    413: {"model": ErrorOut, "description": "the request body is over the size limit"},
    415: {"model": ErrorOut, "description": "the body is not an image (or not multipart/JSON)"},
    422: {"model": ErrorOut, "description": "a corrupt, empty, too large or out-of-bounds image "
                                            "(too thin; for /api/read, writing too long for a "
                                            "number or on several lines), a JSON body of the "
                                            "wrong shape, or a malformed multipart body"},
}
OFF = {404: {"model": ErrorOut, "description": "corrections are off on this server"}}
CROSS_SITE = {403: {"model": ErrorOut, "description": "sent by another site's page"}}
ADMIN = {401: {"model": ErrorOut, "description": "no admin token, or a wrong one"},
         404: {"model": ErrorOut, "description": "admin routes are off (no token set on the server), "
                                                 "or no such correction"}}
BAD_FORMAT = {"model": ErrorOut, "description": "an export format other than idx or png"}
BAD_RUN = {"model": ErrorOut, "description": "a run that does not load (the served model stays), "
                                             "or a body of the wrong shape"}
STORE_ERROR = {503: {"model": ErrorOut, "description": "the corrections database cannot be used now"}}
LIMITED = {
    429: {"model": ErrorOut, "description": "this client stored its share of corrections for now "
                                            "(Retry-After says when to try again)"},
    507: {"model": ErrorOut, "description": "the corrections store is full until an admin reviews it"},
}
