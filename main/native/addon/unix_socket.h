// Unix stream sockets with descriptor passing (unix_socket.c).
#ifndef HITCH_UNIX_SOCKET_H
#define HITCH_UNIX_SOCKET_H
#include <node_api.h>

napi_value unix_listen(napi_env env, napi_callback_info info);
napi_value unix_adopt(napi_env env, napi_callback_info info);
napi_value unix_connect(napi_env env, napi_callback_info info);

#endif
