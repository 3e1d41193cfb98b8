from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class PutCredentialsRequest(_message.Message):
    __slots__ = ("image_ref", "host", "username", "secret")
    IMAGE_REF_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    image_ref: str
    host: str
    username: str
    secret: str
    def __init__(self, image_ref: _Optional[str] = ..., host: _Optional[str] = ..., username: _Optional[str] = ..., secret: _Optional[str] = ...) -> None: ...
