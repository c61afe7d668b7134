"""What a Jenkins job sees: a non-Rust gRPC client that knows nothing of convoy's
.proto files. It discovers the API through server reflection, checks health, and calls
convoy.v1.ClusterService/ListClusters and ReleaseService/GetRelease with dynamically
built messages, and asks what a release file would change (DiffRelease, the chart sent
as a gzipped tar, as a Jenkins job would build it). Prints one JSON object with what it
found.

Usage: python reflection_client.py HOST:PORT TOKEN DEPLOY_TOKEN RELEASE_FILE CHART_DIR
"""
import base64
import io
import json
import os
import sys
import tarfile

import grpc
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


def call(channel, pool, method, request_json, token):
    service, name = method.rsplit("/", 1)
    m = pool.FindServiceByName(service).FindMethodByName(name)
    req_cls = message_factory.GetMessageClass(m.input_type)
    resp_cls = message_factory.GetMessageClass(m.output_type)
    stub = channel.unary_unary(
        "/" + method,
        request_serializer=lambda r: r.SerializeToString(),
        response_deserializer=resp_cls.FromString,
    )
    req = json_format.Parse(json.dumps(request_json), req_cls())
    try:
        resp = stub(req, metadata=[("authorization", "Bearer " + token)], timeout=10)
        return {"ok": json_format.MessageToDict(resp)}
    except grpc.RpcError as e:
        return {"code": e.code().name, "details": e.details()}


def chart_archive(chart_dir):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(chart_dir, arcname=os.path.basename(chart_dir.rstrip("/")))
    return base64.b64encode(buf.getvalue()).decode()


def main():
    target, token, deploy_token, release_file, chart_dir = sys.argv[1:6]
    channel = grpc.insecure_channel(target)
    out = {}
    health = health_pb2_grpc.HealthStub(channel)
    out["health"] = health_pb2.HealthCheckResponse.ServingStatus.Name(
        health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status
    )
    db = ProtoReflectionDescriptorDatabase(channel)
    out["services"] = sorted(db.get_services())
    pool = DescriptorPool(db)
    out["clusters"] = call(channel, pool, "convoy.v1.ClusterService/ListClusters", {}, token)
    out["missing_release"] = call(
        channel, pool, "convoy.v1.ReleaseService/GetRelease", {"release": "nope.ns"}, token
    )
    out["bad_token"] = call(channel, pool, "convoy.v1.ClusterService/ListClusters", {}, "wrong")
    with open(release_file) as f:
        release_yaml = f.read()
    diff = {
        "submit": {
            "release_yaml": release_yaml,
            "source_name": os.path.basename(release_file),
            "chart_archive": chart_archive(chart_dir),
        },
        "timeout_seconds": 5,
    }
    out["diff"] = call(channel, pool, "convoy.v1.ReleaseService/DiffRelease", diff, deploy_token)
    out["diff_as_viewer"] = call(channel, pool, "convoy.v1.ReleaseService/DiffRelease", diff, token)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
