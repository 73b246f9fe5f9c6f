// Package loopback serves in-process fakes of Google APIs on 127.0.0.1 and
// dials them the way the real client libraries expect (docs/google-cloud.md §11).
package loopback

import (
	"context"
	"fmt"
	"net"

	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// GRPCServer is a gRPC server listening on a loopback port.
type GRPCServer struct {
	Addr   string
	server *grpc.Server
	lis    net.Listener
}

// ServeGRPC starts a gRPC server on addr (use "127.0.0.1:0" for any free
// port) after register has added the services to it.
func ServeGRPC(addr string, register func(*grpc.Server)) (*GRPCServer, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("failed to listen on %s: %w", addr, err)
	}
	return ServeGRPCListener(lis, register), nil
}

// ServeGRPCListener is ServeGRPC on a listener the caller opened, for when
// the address must be known before the services are built.
func ServeGRPCListener(lis net.Listener, register func(*grpc.Server)) *GRPCServer {
	s := grpc.NewServer()
	register(s)
	go s.Serve(lis) //nolint:errcheck // Serve returns when Stop is called
	return &GRPCServer{Addr: lis.Addr().String(), server: s, lis: lis}
}

// ClientOptions are the options a Google client library needs to talk to
// this server: plaintext, no credentials.
func (s *GRPCServer) ClientOptions() []option.ClientOption {
	return ClientOptions(s.Addr)
}

// Stop stops the server at once, closing open connections.
func (s *GRPCServer) Stop() { s.server.Stop() }

// ClientOptions aims a Google gRPC client library at a local address.
func ClientOptions(addr string) []option.ClientOption {
	return []option.ClientOption{
		option.WithEndpoint(addr),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
	}
}

// Dial opens a plaintext client connection to addr.
func Dial(_ context.Context, addr string) (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("failed to dial %s: %w", addr, err)
	}
	return conn, nil
}
