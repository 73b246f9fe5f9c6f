package jit

import (
	_ "cloud.google.com/go/cloudtasks/apiv2"
	_ "cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	_ "cloud.google.com/go/iam/apiv1/iampb"
	_ "cloud.google.com/go/pubsub/v2"
	_ "cloud.google.com/go/pubsub/v2/pstest"
	_ "cloud.google.com/go/resourcemanager/apiv3"
	_ "cloud.google.com/go/workflows/executions/apiv1"
	_ "cloud.google.com/go/workflows/executions/apiv1/executionspb"
	_ "github.com/GoogleCloudPlatform/functions-framework-go/functions"
	_ "github.com/GoogleCloudPlatform/functions-framework-go/funcframework"
	_ "github.com/cloudevents/sdk-go/v2"
	_ "github.com/google/cel-go/cel"
	_ "github.com/google/go-cmp/cmp"
	_ "google.golang.org/api/idtoken"
	_ "google.golang.org/genproto/googleapis/type/expr"
	_ "google.golang.org/grpc"
	_ "google.golang.org/protobuf/testing/protocmp"
	_ "gopkg.in/yaml.v3"
)
